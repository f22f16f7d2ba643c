package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/core/ops"
)

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the running runner is doing",
		Long: `status asks the running runner, over its control socket, for the account
and connection, the update lag, each plugin (state, queue, last error,
restarts), the guard's send budgets, and whether writes are paused or in
dry-run mode.

With several accounts it prints one line per account (where it runs, the
session, the connection, the update lag, writes, plugins), then each
account this runner runs in detail; --account NAME shows one.

--json prints the same data as one JSON object (a stable format for
scripts; see docs/operations.md). The exit code is 0 when the runner
answers, whether or not it is ready; "ready" in the output says that.`,
		Example: `  runner status
  runner status --json | jq '.plugins[] | {name, state, queue_depth}'
  runner status --socket /var/lib/tgrunner/runner.sock
  runner status --account sales`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dialRunner(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addSocketFlag(cmd)
	return cmd
}

func printStatus(out io.Writer, st ops.Status) error {
	if len(st.Accounts) == 1 {
		return printAccount(out, st, st.Accounts[0])
	}
	if err := printAccounts(out, st); err != nil {
		return err
	}
	for _, a := range st.Accounts {
		if !a.Held {
			continue
		}
		fmt.Fprintf(out, "\n== account %s ==\n", a.Account.Name)
		if err := printAccount(out, st, a); err != nil {
			return err
		}
	}
	return nil
}

// printAccounts is the one-line-per-account summary of a runner with
// several accounts.
func printAccounts(out io.Writer, st ops.Status) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tRUNS\tLOGGED IN\tCONNECTION\tLAG\tWRITES\tPLUGINS\tREADY")
	for _, a := range st.Accounts {
		runs := "here"
		if !a.Held {
			runs = "elsewhere: " + dashIfEmpty(a.HeldBy)
			if a.HeldBy == "" {
				runs = "nowhere"
			}
		}
		login := "no"
		if a.Account.LoggedIn {
			login = "yes"
			if a.Account.Username != "" {
				login += " @" + a.Account.Username
			}
		}
		writes := "-"
		if g := a.Guard; g != nil {
			writes = "flowing"
			if g.Paused {
				writes = "PAUSED"
			}
		}
		if a.FleetPause != nil {
			writes = "PAUSED (fleet)"
		}
		up := 0
		for _, p := range a.Plugins {
			if p.State == "running" {
				up++
			}
		}
		ready := "yes"
		if !a.Ready.Ready {
			ready = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d/%d running\t%s\n", a.Account.Name, runs, login,
			a.Connection.State, a.Journal.Lag, writes, up, len(a.Plugins), ready)
	}
	ready := "yes"
	if !st.Ready.Ready {
		ready = "no: " + strings.Join(st.Ready.Problems, "; ")
	}
	fmt.Fprintf(tw, "\nReady\t%s\n", ready)
	runner := fmt.Sprintf("version %s, pid %d, up since %s", st.Version, st.PID, st.StartedAt.Local().Format("2006-01-02 15:04:05"))
	if st.Holder != "" {
		runner += ", lease holder " + st.Holder
	}
	fmt.Fprintf(tw, "Runner\t%s\n", runner)
	return tw.Flush()
}

// printAccount prints one account in detail.
func printAccount(out io.Writer, st ops.Status, acct ops.AccountStatus) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	a := acct.Account
	who := a.Name
	if a.Display != "" {
		who = a.Display
	}
	if a.Username != "" {
		who += " @" + a.Username
	}
	if a.UserID != 0 {
		who += fmt.Sprintf(" (id %d)", a.UserID)
	}
	login := "not logged in"
	if a.LoggedIn {
		login = "logged in since " + a.Since.Local().Format("2006-01-02 15:04:05")
	} else if a.LastError != "" {
		login += ": " + a.LastError
	}
	fmt.Fprintf(tw, "Account\t%s, %s\n", who, login)
	if p := acct.FleetPause; p != nil {
		fmt.Fprintf(tw, "Fleet pause\t%s, since %s (runner resume lifts it from any machine)\n", p.Reason, p.Since.Local().Format("2006-01-02 15:04:05"))
	}
	if !acct.Held {
		runs := "not in this runner"
		switch {
		case acct.HeldBy != "":
			runs += "; runner " + acct.HeldBy + " holds its lease"
		case st.Holder != "":
			runs += "; no runner holds its lease right now"
		}
		fmt.Fprintf(tw, "Runs\t%s\n", runs)
	}
	c := acct.Connection
	conn := fmt.Sprintf("%s to %s", c.State, c.Server)
	if c.Reported {
		conn += fmt.Sprintf(", %d reconnects", c.Reconnects)
		if c.LastDead != "" {
			conn += " (last: " + c.LastDead + ")"
		}
	} else {
		conn += " (from the session; the runner does not report reconnects)"
	}
	fmt.Fprintf(tw, "Connection\t%s\n", conn)
	fmt.Fprintf(tw, "Update lag\t%d events (journal: %d kept, last seq %d)\n", acct.Journal.Lag, acct.Journal.Depth, acct.Journal.LastSeq)
	if g := acct.Guard; g != nil {
		writes := "flowing"
		if g.Paused {
			writes = "PAUSED: " + g.PauseReason
		}
		fmt.Fprintf(tw, "Writes\t%s\n", writes)
		dry := "off"
		if g.DryRun {
			dry = "ON (nothing is sent)"
		}
		fmt.Fprintf(tw, "Dry run\t%s\n", dry)
		fmt.Fprintf(tw, "Waiting\t%d actions\n", g.Waiting)
		var budgets []string
		for _, b := range g.Budgets {
			budgets = append(budgets, fmt.Sprintf("%s %.1f/%d (%.1f/min)", b.Name, b.Tokens, b.Burst, b.PerSec*60))
		}
		fmt.Fprintf(tw, "Budgets\t%s\n", dashIfEmpty(strings.Join(budgets, ", ")))
		if n := len(g.RecentThrottles); n > 0 {
			last := g.RecentThrottles[n-1]
			fmt.Fprintf(tw, "Throttles\t%d recent; last %s %s %s: %s\n", n, last.Time.Local().Format("15:04:05"), last.Source, last.Kind, last.Reason)
		}
	} else {
		fmt.Fprintf(tw, "Writes\tthe guard is not running yet\n")
	}
	ready := "yes"
	if !acct.Ready.Ready {
		ready = "no: " + strings.Join(acct.Ready.Problems, "; ")
	}
	fmt.Fprintf(tw, "Ready\t%s\n", ready)
	if len(st.Accounts) > 1 {
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(out)
		return printPlugins(out, acct.Plugins)
	}
	fmt.Fprintf(tw, "Runner\tversion %s, pid %d, up since %s\n", st.Version, st.PID, st.StartedAt.Local().Format("2006-01-02 15:04:05"))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return printPlugins(out, acct.Plugins)
}

func printPlugins(out io.Writer, plugins []ops.Plugin) error {
	if len(plugins) == 0 {
		fmt.Fprintln(out, "No plugins.")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tSTATE\tQUEUE\tIN FLIGHT\tDELIVERED\tFAILED\tRESTARTS\tLAG\tLAST ERROR")
	for _, p := range plugins {
		last := p.LastError
		if p.QuarantineReason != "" {
			last = p.QuarantineReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.State, p.QueueDepth, p.InFlight,
			p.Delivered, p.Failed, p.Restarts, p.Lag, dashIfEmpty(oneLine(last)))
	}
	return tw.Flush()
}
