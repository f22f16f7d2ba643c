package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tgrunner/tgrunner/sandbox"
)

const chatHelp = `Type a message and press Enter to send it as the current person.
  /as NAME     speak as someone else: alice, bob, carol, or owner (the account tgrunner runs as)
  /to CHAT     write to: a person (owner, alice...), saved, or a chat (friends, news, chat)
  /who         list the people, chats and plugins
  /help        this help
  /quit        stop (Ctrl+D works too)
Try: "hi" as alice (an away reply), 3 messages as carol (pmguard), "deploy failed" in
/to chat (an alert), "good morning" in /to friends (a rule), /as owner then /to saved
and .help, .status or .afk (the owner's commands).`

// chat runs the interactive terminal chat until /quit, end of input or ctx.
func (d *demo) chat(ctx context.Context, in io.Reader) error {
	alice, ok := d.person("alice")
	if !ok {
		alice = d.people[0]
	}
	speaker, target := alice.id, sandbox.UserPeer(d.owner)
	if speaker == d.owner {
		target = sandbox.UserPeer(d.owner)
	}
	p := d.out
	p.println(p.paint(ansiBold, "tgrunner sandbox") + ": the runner is logged in as " + d.userName(d.owner) +
		" with " + fmt.Sprint(len(d.cfg.Plugins)) + " plugins (" + d.cfg.File + "). Runner log: " + d.logPath)
	p.println(d.describe())
	p.println(chatHelp)

	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
	}()
	for {
		p.setPrompt(p.paint(ansiBold, d.userName(speaker)) + " → " + d.chatName(speaker, target) + "> ")
		var line string
		select {
		case <-ctx.Done():
			p.println("")
			return nil
		case err := <-readErr:
			p.println("")
			return err
		case line = <-lines:
		}
		line = strings.TrimSpace(line)
		cmd, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		switch {
		case line == "":
		case cmd == "/quit" || cmd == "/exit":
			return nil
		case cmd == "/help":
			p.println(chatHelp)
		case cmd == "/who":
			p.println(d.describe())
		case cmd == "/as":
			who, ok := d.person(arg)
			if !ok {
				p.println(p.paint(ansiRed, fmt.Sprintf("no one called %q; /who lists the people", arg)))
				continue
			}
			// Keep talking to the same conversation from the other side.
			if target == sandbox.UserPeer(who.id) {
				target = sandbox.UserPeer(speaker)
			}
			speaker = who.id
		case cmd == "/to":
			peer, ok := d.findChat(speaker, arg)
			if !ok {
				p.println(p.paint(ansiRed, fmt.Sprintf("no chat called %q; /who lists them", arg)))
				continue
			}
			target = peer
		case strings.HasPrefix(cmd, "/") && !strings.HasPrefix(cmd, "//"):
			p.println(p.paint(ansiRed, "unknown command "+cmd+"; /help lists them"))
		default:
			line = strings.TrimPrefix(line, "/") // "//x" sends "/x"
			if _, err := d.say(ctx, speaker, target, line); err != nil {
				p.println(p.paint(ansiRed, "not sent: "+err.Error()))
			}
		}
	}
}
