package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// Notifier tells the service manager about the runner's life. Outside
// systemd (no $NOTIFY_SOCKET) every call is a no-op.
type Notifier interface {
	Ready() error
	Reloading() error
	Stopping() error
	Watchdog() error
	// WatchdogInterval is systemd's WatchdogSec, or 0 when the watchdog is
	// off.
	WatchdogInterval() time.Duration
}

// SystemdNotifier is the real sd_notify.
type SystemdNotifier struct{}

func notify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return nil
}

// Ready sends READY=1.
func (SystemdNotifier) Ready() error { return notify(daemon.SdNotifyReady) }

// Reloading sends RELOADING=1 with the monotonic time (Type=notify-reload
// wants it); send Ready when the reload is done.
func (SystemdNotifier) Reloading() error {
	return notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// Stopping sends STOPPING=1.
func (SystemdNotifier) Stopping() error { return notify(daemon.SdNotifyStopping) }

// Watchdog sends WATCHDOG=1.
func (SystemdNotifier) Watchdog() error { return notify(daemon.SdNotifyWatchdog) }

// WatchdogInterval reads $WATCHDOG_USEC (for this process).
func (SystemdNotifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

// Reloading tells systemd a reload began; ReloadDone tells it the reload
// ended. The runner's Reloader calls both.
func (o *Ops) Reloading() {
	if err := o.opts.Notifier.Reloading(); err != nil {
		o.log.Debug("Could not notify systemd of the reload", zap.Error(err))
	}
}

// ReloadDone tells systemd the reload is over.
func (o *Ops) ReloadDone() {
	if err := o.opts.Notifier.Ready(); err != nil {
		o.log.Debug("Could not notify systemd that the reload is done", zap.Error(err))
	}
}

// watchdog pings systemd at half its WatchdogSec while the runner is
// alive: the storage answers a read within the interval. A runner wedged
// on its database stops pinging and systemd restarts it.
func (o *Ops) watchdog(ctx context.Context) {
	interval := o.opts.Notifier.WatchdogInterval()
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		if err := o.alive(ctx, interval/2); err != nil {
			o.log.Error("Liveness check failed; not pinging the systemd watchdog", zap.Error(err))
		} else if err := o.opts.Notifier.Watchdog(); err != nil {
			o.log.Warn("Could not ping the systemd watchdog", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// alive checks the runner can still do its work: the storage of every
// account running here answers.
func (o *Ops) alive(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var errs []error
		for _, a := range o.accounts {
			if st := a.view().st; st != nil {
				if _, err := st.Journal().Depth(ctx); err != nil {
					errs = append(errs, fmt.Errorf("account %s: %w", a.name, err))
				}
			}
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("storage did not answer within %s", timeout)
	}
}
