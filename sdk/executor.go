package sdk

import "sync"

// executor runs tasks so that tasks of one key run one after another in
// submission order, while tasks of different keys run concurrently on at
// most max goroutines. A busy key yields its goroutine to waiting keys
// after each task, so one chatty chat cannot starve the others.
type executor struct {
	mu      sync.Mutex
	idle    *sync.Cond
	max     int
	running int
	pending int // submitted and not finished
	queues  map[string]*keyQueue
	ready   []*keyQueue // keys with tasks and no goroutine
}

type keyQueue struct {
	key    string
	tasks  []func()
	active bool // running or in ready
}

func newExecutor(max int) *executor {
	e := &executor{max: max, queues: map[string]*keyQueue{}}
	e.idle = sync.NewCond(&e.mu)
	return e
}

func (e *executor) submit(key string, task func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending++
	q := e.queues[key]
	if q == nil {
		q = &keyQueue{key: key}
		e.queues[key] = q
	}
	q.tasks = append(q.tasks, task)
	if q.active {
		return
	}
	q.active = true
	if e.running < e.max {
		e.running++
		go e.work(q)
		return
	}
	e.ready = append(e.ready, q)
}

func (e *executor) work(q *keyQueue) {
	e.mu.Lock()
	for {
		if len(q.tasks) == 0 {
			q.active = false
			delete(e.queues, q.key)
			if len(e.ready) == 0 {
				e.running--
				e.mu.Unlock()
				return
			}
			q = e.ready[0]
			e.ready[0] = nil
			e.ready = e.ready[1:]
			continue
		}
		task := q.tasks[0]
		q.tasks[0] = nil
		q.tasks = q.tasks[1:]
		e.mu.Unlock()

		task()

		e.mu.Lock()
		e.pending--
		if e.pending == 0 {
			e.idle.Broadcast()
		}
		if len(q.tasks) > 0 && len(e.ready) > 0 {
			e.ready = append(e.ready, q)
			q = e.ready[0]
			e.ready[0] = nil
			e.ready = e.ready[1:]
		}
	}
}

// wait blocks until every submitted task has finished.
func (e *executor) wait() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.pending > 0 {
		e.idle.Wait()
	}
}

// dedupe remembers the events seen in this process, so a redelivered event
// is not handled twice. It keeps the last n; the runner redelivers only
// events in its in-flight window, far fewer than that.
type dedupe struct {
	mu    sync.Mutex
	state map[eventKey]bool // true once handled
	ring  []eventKey
	next  int
}

type eventKey struct {
	account string
	seq     uint64
}

func newDedupe(n int) *dedupe {
	return &dedupe{state: make(map[eventKey]bool, n), ring: make([]eventKey, 0, n)}
}

// begin reports whether k is new (and marks it in flight), and otherwise
// whether it was already handled.
func (d *dedupe) begin(k eventKey) (fresh, handled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.state[k]; ok {
		return false, h
	}
	if len(d.ring) < cap(d.ring) {
		d.ring = append(d.ring, k)
	} else {
		delete(d.state, d.ring[d.next])
		d.ring[d.next] = k
		d.next = (d.next + 1) % len(d.ring)
	}
	d.state[k] = false
	return true, false
}

func (d *dedupe) finish(k eventKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.state[k]; ok {
		d.state[k] = true
	}
}
