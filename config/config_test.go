package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func load(t *testing.T, args []string, envm map[string]string) (*Config, error) {
	t.Helper()
	c, _, err := Load("test", args, func(k string) string { return envm[k] }, io.Discard, nil)
	return c, err
}

func TestDefaultsArePEBAs(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.BindHost != "127.0.0.1:9922" || c.DataDir != "./peba-data" || c.CommunityUser != "community-01-user" ||
		c.CommunityToken != "foth{a5maiCee8fineu7" || c.MaxAlerts != 5 || c.BadIPTimespan != 120 ||
		c.DefaultResponse != "Nope" || c.RetentionDays != 90 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	// PEBA 1.x's peba.cfg is Python syntax; its simple lines must load, and
	// keys that mean nothing here (ELASTICSEARCH_HOST) are ignored.
	file := filepath.Join(t.TempDir(), "peba.cfg")
	os.WriteFile(file, []byte(`# PEBA config
DEFAULTRESPONSE = "Nope!"
BINDHOST = "0.0.0.0:1111"
MAXALERTS = 7
ELASTICSEARCH_HOST = "127.0.0.1:9200"
COMMUNITYTOKEN = 'from-file'
`), 0o600)
	c, err := load(t, []string{"-config", file, "-maxalerts", "9"}, map[string]string{"PEBA_BINDHOST": "127.0.0.1:2222"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultResponse != "Nope!" || c.BindHost != "127.0.0.1:2222" || c.MaxAlerts != 9 || c.CommunityToken != "from-file" {
		t.Errorf("got %+v", c)
	}
}

func TestSecretFromFileAndNeverDumped(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(secret, []byte("s3cr3t\n"), 0o600)
	c, err := load(t, nil, map[string]string{"PEBA_COMMUNITYTOKEN_FILE": secret})
	if err != nil {
		t.Fatal(err)
	}
	if c.CommunityToken != "s3cr3t" {
		t.Errorf("token %q", c.CommunityToken)
	}
	dump := strings.Join(c.Dump(), "\n")
	if strings.Contains(dump, "s3cr3t") || !strings.Contains(dump, "COMMUNITYTOKEN = ********") {
		t.Errorf("dump leaks or lacks the secret line:\n%s", dump)
	}
}

func TestInvalidValuesNamed(t *testing.T) {
	_, err := load(t, []string{"-maxalerts", "abc", "-retentiondays", "-1"}, map[string]string{"PEBA_LOGLEVEL": "loud", "PEBA_COMMUNITYTOKEN": "x"})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"MAXALERTS=\"abc\"", "RETENTIONDAYS=\"-1\"", "LOGLEVEL=\"loud\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestFlagsAfterPositionalArguments(t *testing.T) {
	var token string
	c, fs, err := Load("user add", []string{"alice", "--token", "T", "-datadir", "/x", "--", "-literal"},
		func(string) string { return "" }, io.Discard, func(fs *flag.FlagSet) { fs.StringVar(&token, "token", "", "") })
	if err != nil {
		t.Fatal(err)
	}
	if token != "T" || c.DataDir != "/x" || strings.Join(fs.Args(), ",") != "alice,-literal" {
		t.Errorf("token=%q datadir=%q args=%q", token, c.DataDir, fs.Args())
	}
}

func TestSecKCAliases(t *testing.T) {
	env := map[string]string{
		"HOST": "0.0.0.0", "PORT": "5000", "DEBUG": "true",
		"HPFEEDS_HOST": "broker.example", "HPFEEDS_PORT": "10001", "HPFEEDS_USER": "seckc",
		"HPFEEDS_SECRET": "s3cret", "HPFEEDS_CHANNELS": "dionaea.connections, cowrie.sessions",
	}
	c, err := load(t, nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.BindHost != "0.0.0.0:5000" || c.LogLevel != "debug" || c.HpfeedsHost != "broker.example" || c.HpfeedsPort != 10001 ||
		c.HpfeedsIdent != "seckc" || c.HpfeedsSecret != "s3cret" ||
		strings.Join(c.HpfeedsChannels, "|") != "dionaea.connections|cowrie.sessions" {
		t.Errorf("aliases not applied: %+v", c)
	}
	// PORT alone keeps the default host; the PEBA_* name wins over the alias,
	// and a flag over both.
	c, err = load(t, nil, map[string]string{"PORT": "5000"})
	if err != nil || c.BindHost != "127.0.0.1:5000" {
		t.Fatalf("PORT alone: %v %v", c.BindHost, err)
	}
	env["PEBA_BINDHOST"] = "127.0.0.2:1"
	env["PEBA_HPFEEDS_IDENT"] = "peba-name"
	c, err = load(t, []string{"-hpfeeds_port", "2"}, env)
	if err != nil || c.BindHost != "127.0.0.2:1" || c.HpfeedsIdent != "peba-name" || c.HpfeedsPort != 2 {
		t.Fatalf("precedence: %+v %v", c, err)
	}
	// Invalid alias values are reported under the option's name.
	if _, err := load(t, nil, map[string]string{"HPFEEDS_PORT": "x"}); err == nil || !strings.Contains(err.Error(), "HPFEEDS_PORT") {
		t.Errorf("bad alias value: %v", err)
	}
}

func TestLimitsAndBlockLists(t *testing.T) {
	c, err := load(t, nil, map[string]string{
		"PEBA_BLOCKSENSORS": "mallory, bad-sensor", "PEBA_BLOCKADDRESSES": "192.0.2.0/24,2001:db8::1",
		"PEBA_TRUSTEDPROXIES": "10.0.0.1", "PEBA_RATELIMIT_ADDRESS": "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.BlockSensors, "|") != "mallory|bad-sensor" || len(c.BlockAddresses) != 2 ||
		c.BlockAddresses[1].String() != "2001:db8::1/128" || c.TrustedProxies[0].String() != "10.0.0.1/32" || c.RateAddress != 0 {
		t.Errorf("%+v", c)
	}
	d, _ := load(t, nil, nil)
	if len(d.TrustedProxies) != 0 || d.RateAddress == 0 || d.RateSensor == 0 {
		t.Errorf("defaults: proxies %v, address limit %d, sensor limit %d", d.TrustedProxies, d.RateAddress, d.RateSensor)
	}
	if _, err := load(t, nil, map[string]string{"PEBA_TRUSTEDPROXIES": "everyone"}); err == nil {
		t.Error("bad CIDR accepted")
	}
}

func TestDashboardOptions(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Dashboard || c.DashboardPath != "/" {
		t.Errorf("defaults: dashboard %v at %q, want on at /", c.Dashboard, c.DashboardPath)
	}
	c, err = load(t, []string{"-dashboard", "off", "-dashboardpath", "/ops/map/"}, nil)
	if err != nil || c.Dashboard || c.DashboardPath != "/ops/map/" {
		t.Errorf("got %+v, %v", c, err)
	}
	for _, bad := range []string{"dashboard", "/dashboard", "/alert/", "/api/map/", "/a b/", "/../"} {
		if _, err := load(t, []string{"-dashboardpath", bad}, nil); err == nil || !strings.Contains(err.Error(), "DASHBOARDPATH") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := load(t, nil, map[string]string{"PEBA_DASHBOARD": "maybe"}); err == nil || !strings.Contains(err.Error(), "DASHBOARD=") {
		t.Errorf("DASHBOARD=maybe: %v", err)
	}
}
