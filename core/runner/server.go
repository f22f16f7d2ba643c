package runner

import (
	"fmt"
	"net"
	"strconv"

	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/dcs"
	"github.com/gotd/td/tg"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/sandbox"
)

// ClientOptions returns the gotd options that reach the configured server.
// sb is the embedded sandbox, required for server: sandbox.
func ClientOptions(cfg *config.Config, sb *sandbox.Server) (telegram.Options, error) {
	var opts telegram.Options
	switch cfg.Server.Type {
	case config.ServerProduction, "":
		// gotd's defaults are Telegram's production DCs and keys.
	case config.ServerTest:
		opts.DCList = dcs.Test()
		opts.DC = cfg.Server.DC
		if opts.DC == 0 {
			opts.DC = config.DefaultTestDC
		}
	case config.ServerSandbox:
		if sb == nil {
			return opts, fmt.Errorf("server: sandbox needs the embedded sandbox to be started")
		}
		opts = sb.ClientOptions()
	case config.ServerCustom:
		host, portStr, err := net.SplitHostPort(cfg.Server.Address)
		if err != nil {
			return opts, fmt.Errorf("server.address %q: %w", cfg.Server.Address, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return opts, fmt.Errorf("server.address %q: bad port: %w", cfg.Server.Address, err)
		}
		ip := net.ParseIP(host)
		if ip == nil {
			addrs, err := net.LookupIP(host)
			if err != nil || len(addrs) == 0 {
				return opts, fmt.Errorf("server.address %q: cannot resolve host: %v", cfg.Server.Address, err)
			}
			ip = addrs[0]
		}
		opt := tg.DCOption{ID: cfg.Server.DC, IPAddress: ip.String(), Port: port}
		if ip.To4() == nil {
			opt.Ipv6 = true
		}
		opts.DC = cfg.Server.DC
		opts.DCList = dcs.List{Options: []tg.DCOption{opt}}
		opts.Resolver = dcs.Plain(dcs.PlainOptions{Obfuscated: cfg.Server.Obfuscated})
		for _, k := range cfg.Server.PublicKeys {
			opts.PublicKeys = append(opts.PublicKeys, telegram.PublicKey{RSA: k})
		}
		if len(opts.PublicKeys) == 0 {
			return opts, fmt.Errorf("server.public_key_file: no RSA public key loaded")
		}
	default:
		return opts, fmt.Errorf("server: unknown type %q", cfg.Server.Type)
	}
	d := cfg.Account.Device
	opts.Device = telegram.DeviceConfig{
		DeviceModel:    d.Model,
		SystemVersion:  d.SystemVersion,
		AppVersion:     d.AppVersion,
		LangCode:       d.LangCode,
		SystemLangCode: d.SystemLangCode,
	}
	return opts, nil
}
