package config

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestAccountsEachGetTheirOwnConfig(t *testing.T) {
	env := map[string]string{
		"SALES_HASH":   "0123456789abcdef0123456789abcdef",
		"SUPPORT_HASH": "fedcba9876543210fedcba9876543210",
		"SUPPORT_PW":   "support secret",
	}
	src := `version: 1
storage:
  dir: /var/lib/tgr
limits:
  send:
    per_chat: 5/min
plugins:
  - name: echo
    builtin: echo
accounts:
  - name: sales
    api_id: 1001
    api_hash: ${SALES_HASH}
    phone: "+15550000001"
  - name: support
    api_id: 1002
    api_hash: ${SUPPORT_HASH}
    password: ${SUPPORT_PW}
    plugins:
      - name: ping
        builtin: ping
    limits:
      send:
        per_chat: 1/min
`
	c, err := Parse("t.yaml", []byte(src), LoadOptions{LookupEnv: MapEnv(env)})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AccountNames(); !slices.Equal(got, []string{"sales", "support"}) {
		t.Fatalf("AccountNames = %v", got)
	}
	sales, err := c.ForAccount("sales")
	if err != nil {
		t.Fatal(err)
	}
	support, err := c.ForAccount("support")
	if err != nil {
		t.Fatal(err)
	}
	if sales.Account.APIID != 1001 || support.Account.APIID != 1002 {
		t.Errorf("api ids %d, %d", sales.Account.APIID, support.Account.APIID)
	}
	if want := filepath.Join("/var/lib/tgr", "sales"); sales.Storage.Dir != want {
		t.Errorf("sales storage %q, want %q", sales.Storage.Dir, want)
	}
	if want := filepath.Join("/var/lib/tgr", "support"); support.Storage.Dir != want {
		t.Errorf("support storage %q, want %q", support.Storage.Dir, want)
	}
	if len(sales.Plugins) != 1 || sales.Plugins[0].Name != "echo" {
		t.Errorf("sales inherits the top-level plugins, got %+v", sales.Plugins)
	}
	if len(support.Plugins) != 1 || support.Plugins[0].Name != "ping" {
		t.Errorf("support has its own plugins, got %+v", support.Plugins)
	}
	if sales.Limits.Send.PerChat.Rate != c.Limits.Send.PerChat.Rate {
		t.Errorf("sales inherits the top-level limits")
	}
	if support.Limits.Send.PerChat.Rate == c.Limits.Send.PerChat.Rate {
		t.Errorf("support has its own per_chat limit, got the top-level one")
	}
	if support.Limits.Send.Global != c.Limits.Send.Global {
		t.Errorf("support keeps the top-level keys it does not set")
	}
	if len(sales.Accounts) != 0 {
		t.Errorf("an account's config has no accounts of its own")
	}
	if _, err := c.ForAccount("nobody"); err == nil {
		t.Error("ForAccount of an unknown name succeeded")
	}
	secrets := c.SecretValues()
	for _, s := range []string{env["SALES_HASH"], env["SUPPORT_HASH"], env["SUPPORT_PW"], "+15550000001"} {
		if !slices.Contains(secrets, s) {
			t.Errorf("SecretValues misses a secret of an account")
		}
	}
	if names := c.SecretEnvNames(); !slices.Contains(names, "SUPPORT_PW") || !slices.Contains(names, "SALES_HASH") {
		t.Errorf("SecretEnvNames = %v", names)
	}
}

func TestSingleAccountIsDefault(t *testing.T) {
	c, err := Parse("t.yaml", []byte("version: 1\nserver: sandbox\nstorage:\n  dir: /data\n"), LoadOptions{LookupEnv: MapEnv(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AccountNames(); !slices.Equal(got, []string{DefaultAccountName}) {
		t.Fatalf("AccountNames = %v", got)
	}
	d, err := c.ForAccount(DefaultAccountName)
	if err != nil || d != c || d.Storage.Dir != "/data" {
		t.Fatalf("ForAccount(default) = %v, %v: want the config itself, storage as is", d, err)
	}
	if _, err := c.ForAccount("sales"); err == nil {
		t.Error("ForAccount of another name succeeded")
	}
}
