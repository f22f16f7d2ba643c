package pluginhost_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// echoChild is the child of BenchmarkCrossProcessFloor: it echoes what it
// reads on a Unix socket, with GOMAXPROCS=1 like the test plugins.
func echoChild(path string) {
	runtime.GOMAXPROCS(1)
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b := make([]byte, 512)
	for {
		n, err := c.Read(b)
		if err != nil {
			return
		}
		if _, err := c.Write(b[:n]); err != nil {
			return
		}
	}
}

// BenchmarkCrossProcessFloor measures what this machine charges for
// waking other processes, with none of the host: at 1,000 rounds a second
// a 150-byte message goes to each of N child processes over a Unix socket
// and comes back. Its p99 is the floor under BenchmarkLatencyAtRate's,
// which does the same through gRPC, TLS, the feed and the plugin.
func BenchmarkCrossProcessFloor(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("processes=%d/rate=1000", n), func(b *testing.B) { benchEchoFloor(b, n) })
	}
}

func benchEchoFloor(b *testing.B, n int) {
	path := filepath.Join(b.TempDir(), "echo.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	conns := make([]net.Conn, n)
	for i := range n {
		cmd := exec.Command(os.Args[0], "echo", path)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Wait() }()
		if conns[i], err = l.Accept(); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	type echo struct {
		at  time.Time
		err error
	}
	back := make(chan echo, n)
	for _, c := range conns {
		go func() {
			buf := make([]byte, 512)
			for {
				_, err := c.Read(buf)
				back <- echo{time.Now(), err}
				if err != nil {
					return
				}
			}
		}()
	}
	msg := make([]byte, 150)
	lat := make([]time.Duration, 0, b.N*n)
	round := func() {
		sent := time.Now()
		for _, c := range conns {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
		for range n {
			e := <-back
			if e.err != nil {
				b.Fatal(e.err)
			}
			lat = append(lat, e.at.Sub(sent))
		}
	}
	for range 200 { // warm up
		round()
	}
	lat = lat[:0]
	b.ResetTimer()
	next := time.Now()
	for range b.N {
		next = next.Add(time.Millisecond)
		time.Sleep(time.Until(next))
		round()
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}
