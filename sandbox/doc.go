// Package sandbox owns tgrunner's Telegram emulator: a real MTProto server
// (gotd/td's tgtest, layer of gotd v0.161.0) listening on TCP that real gotd
// clients log in to. It keeps accounts, contacts, chats, channels, messages
// and per-account / per-channel update logs, pushes updates to every live
// session through a non-blocking queue, answers getDifference like
// Telegram (slices for long backlogs), injects Telegram-like faults, and
// exposes a driver API so tests and demos can act as any account and wait
// for what accounts did.
//
// Embedding:
//
//	srv, _ := sandbox.Start(ctx, sandbox.Options{})
//	defer srv.Close()
//	alice, _ := srv.CreateUser(ctx, sandbox.UserSpec{Phone: "9996610001", FirstName: "Alice"})
//	opts := srv.ClientOptions() // add SessionStorage, UpdateHandler...
//	client := telegram.NewClient(1, "hash", opts)
//	// log in with phone 9996610001 and code 11111 (test numbers 99966XYYYY
//	// use XXXXX; other numbers: srv.LoginCode(phone)).
//	srv.As(alice.ID).SendText(ctx, sandbox.UserPeer(bobID), "hi")
//	msg, _ := srv.WaitMessage(ctx, func(m sandbox.Message) bool { return m.From == bobID })
package sandbox
