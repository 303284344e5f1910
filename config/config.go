// Package config declares every setting of the service once, with its
// default, its PEBA name where PEBA had one, and a validator, and reads them
// from (in rising precedence) a config file, PEBA_* environment variables and
// command-line flags. The resulting Config is immutable and passed to
// constructors; nothing reads a global.
package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba/http/clientip"
	"github.com/peba-go/peba/http/dashboard"
)

// Config is the validated configuration of `peba serve` and the other
// subcommands.
type Config struct {
	BindHost       string // BINDHOST: listen address
	DataDir        string // DATADIR: directory holding the database and payload files
	CommunityUser  string // COMMUNITYUSER
	CommunityToken string // COMMUNITYTOKEN (secret)

	MaxAlerts       int    // MAXALERTS: result size of retrieveAlertsCyber/querySingleIP (PEBA 1.x)
	BadIPTimespan   int    // BADIPTIMESPAN: minutes considered by retrieveIPs
	CORSDomain      string // CORSDOMAIN
	DefaultResponse string // DEFAULTRESPONSE

	ResponseCache bool     // RESPONSECACHE: cache statistics answers (off for benchmarks)
	Memcached     []string // MEMCACHED: memcached servers for the response cache; empty = in-process

	RetentionDays int // RETENTIONDAYS: events older than this are deleted; 0 keeps forever

	GeoIPCity, GeoIPCountry, GeoIPASN string // GEOIP_CITY, GEOIP_COUNTRY, GEOIP_ASN: .mmdb paths

	MaxBodyBytes     int64 // MAXBODYBYTES: largest accepted POST body
	MaxAlertsPerPost int   // MAXALERTSPERPOST: alerts per EWS body
	MaxPayloadBytes  int   // MAXPAYLOADBYTES: payloads above are hashed but their bytes not kept
	MaxFieldBytes    int   // MAXFIELDBYTES: longer text fields are truncated

	QueueEvents    int           // QUEUEEVENTS: events waiting for commit before ingest answers 503
	CommitMaxBatch int           // COMMITMAXEVENTS: events in one group commit
	QueueWait      time.Duration // QUEUEWAIT: how long a post waits for room in a full queue
	ApplyDelay     time.Duration // APPLYDELAY: how long journaled events wait to share a store transaction
	ShutdownGrace  time.Duration // SHUTDOWNGRACE

	DuckDBMemoryLimit string // DUCKDB_MEMORY_LIMIT
	DuckDBThreads     int    // DUCKDB_THREADS
	WriterNice        int    // WRITERNICE: nice value of the embedded store's writer thread (0: unchanged)

	// PostgresDSN selects the multi-node mode: events, users and payloads
	// live in this PostgreSQL database instead of DATADIR, shared by every
	// node (docs/deployment.md, "Several nodes").
	PostgresDSN      string // POSTGRES_DSN (secret: it may hold a password)
	PostgresMaxConns int    // POSTGRES_MAXCONNS: connection pool size per node
	PostgresMemoMB   int    // POSTGRES_MEMO_MB: per-node statistics memo (0: off)

	HpfeedsHost     string   // HPFEEDS_HOST: broker to subscribe to ("" = no hpfeeds ingestion)
	HpfeedsPort     int      // HPFEEDS_PORT
	HpfeedsIdent    string   // HPFEEDS_IDENT (SecKC: HPFEEDS_USER)
	HpfeedsSecret   string   // HPFEEDS_SECRET
	HpfeedsChannels []string // HPFEEDS_CHANNELS: comma-separated
	HpfeedsTLS      bool     // HPFEEDS_TLS
	HpfeedsDomain   string   // HPFEEDS_DOMAIN: community or private

	// Ingest abuse limits (issue 7), in alerts per second and burst; a
	// rate of 0 turns a limit off.
	RateAddress, RateAddressBurst int // RATELIMIT_ADDRESS, RATELIMIT_ADDRESS_BURST: per source address (IPv6 /64)
	RateUser, RateUserBurst       int // RATELIMIT_USER, RATELIMIT_USER_BURST: per submitting user
	RateSensor, RateSensorBurst   int // RATELIMIT_SENSOR, RATELIMIT_SENSOR_BURST: per user + sensor ident

	BlockSensors   []string       // BLOCKSENSORS: usernames or sensor idents refused with 403
	BlockAddresses []netip.Prefix // BLOCKADDRESSES: source CIDRs refused with 403
	TrustedProxies []netip.Prefix // TRUSTEDPROXIES: peers whose X-Forwarded-For is believed

	DebugAddr string // DEBUGADDR: if set, net/http/pprof listens here (keep it on loopback)

	Dashboard     bool   // DASHBOARD: serve the built-in dashboard (docs/dashboard.md)
	DashboardPath string // DASHBOARDPATH: where; "/" replaces PEBA's redirect of / to CORSDOMAIN

	LogLevel  string // LOGLEVEL: debug, info, warn, error
	LogFormat string // LOGFORMAT: text or json

	effective map[string]string // the raw values, for Dump
}

type option struct {
	name   string // PEBA-style upper-case key; env var is PEBA_<name>, flag is lower-case
	def    string
	help   string
	secret bool
	set    func(c *Config, v string) error
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func integer(min int, dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			return fmt.Errorf("must be an integer >= %d", min)
		}
		*dst(c) = n
		return nil
	}
}

// duration parses a duration from 0 to max (0: no bound); example shows
// the form in the error.
func duration(max time.Duration, example string, dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || max > 0 && d > max {
			if max > 0 {
				return fmt.Errorf("must be a duration from 0 to %s, such as %s", max, example)
			}
			return fmt.Errorf("must be a duration such as %s", example)
		}
		*dst(c) = d
		return nil
	}
}

func prefixes(dst func(*Config) *[]netip.Prefix) func(*Config, string) error {
	return func(c *Config, v string) error {
		p, err := clientip.ParsePrefixes(v)
		*dst(c) = p
		return err
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

var options = []option{
	{"BINDHOST", "127.0.0.1:9922", "address to listen on", false, str(func(c *Config) *string { return &c.BindHost })},
	{"DATADIR", "./peba-data", "data directory (database, payload files)", false, str(func(c *Config) *string { return &c.DataDir })},
	{"COMMUNITYUSER", "community-01-user", "username of the shared community credentials", false, str(func(c *Config) *string { return &c.CommunityUser })},
	{"COMMUNITYTOKEN", "foth{a5maiCee8fineu7", "token of the shared community credentials (PEBA's public default)", true, str(func(c *Config) *string { return &c.CommunityToken })},
	{"MAXALERTS", "5", "result size of retrieveAlertsCyber and querySingleIP", false, integer(1, func(c *Config) *int { return &c.MaxAlerts })},
	{"BADIPTIMESPAN", "120", "minutes considered by retrieveIPs", false, integer(1, func(c *Config) *int { return &c.BadIPTimespan })},
	{"CORSDOMAIN", "http://sicherheitstacho.eu", "allowed CORS origin for /alert/*", false, str(func(c *Config) *string { return &c.CORSDomain })},
	{"DEFAULTRESPONSE", "Nope", "body PEBA returns for invalid requests", false, str(func(c *Config) *string { return &c.DefaultResponse })},
	{"RESPONSECACHE", "on", "cache statistics answers with PEBA's TTLs: on or off (off for benchmarks)", false, func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "on", "true", "1", "yes":
			c.ResponseCache = true
		case "off", "false", "0", "no":
			c.ResponseCache = false
		default:
			return errors.New("must be on or off")
		}
		return nil
	}},
	{"MEMCACHED", "", "comma-separated memcached servers (host:port) for the response cache; empty: in-process", false, func(c *Config, v string) error {
		c.Memcached = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.Memcached = append(c.Memcached, s)
			}
		}
		return nil
	}},
	{"RETENTIONDAYS", "90", "delete events older than this many days (0 = keep forever)", false, integer(0, func(c *Config) *int { return &c.RetentionDays })},
	{"GEOIP_CITY", "", "path of a City .mmdb (DB-IP Lite City or GeoLite2-City)", false, str(func(c *Config) *string { return &c.GeoIPCity })},
	{"GEOIP_COUNTRY", "", "path of a Country .mmdb (optional; the City database also has countries)", false, str(func(c *Config) *string { return &c.GeoIPCountry })},
	{"GEOIP_ASN", "", "path of an ASN .mmdb (DB-IP Lite ASN or GeoLite2-ASN)", false, str(func(c *Config) *string { return &c.GeoIPASN })},
	{"MAXBODYBYTES", "33554432", "largest accepted POST body in bytes", false, func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			return errors.New("must be an integer >= 1024")
		}
		c.MaxBodyBytes = n
		return nil
	}},
	{"MAXALERTSPERPOST", "1000", "most alerts accepted in one EWS body (ewsposter sends <= 100)", false, integer(1, func(c *Config) *int { return &c.MaxAlertsPerPost })},
	{"MAXPAYLOADBYTES", "10485760", "payloads larger than this are hashed but not kept", false, integer(0, func(c *Config) *int { return &c.MaxPayloadBytes })},
	{"MAXFIELDBYTES", "65536", "longer text fields are truncated (and the truncation recorded)", false, integer(256, func(c *Config) *int { return &c.MaxFieldBytes })},
	{"QUEUEEVENTS", "20000", "events accepted but not yet in the store before ingest answers 503 + Retry-After (bounds memory)", false, integer(1, func(c *Config) *int { return &c.QueueEvents })},
	{"QUEUEWAIT", "50ms", "how long an EWS post waits for room when the queue is full before it is answered 503 + Retry-After (0: at once)", false, duration(time.Minute, "50ms", func(c *Config) *time.Duration { return &c.QueueWait })},
	{"APPLYDELAY", "200ms", "how long journaled events wait for more to share one store transaction (delays statistics, not acknowledgements nor the live feed; 0: at once)", false, duration(10*time.Second, "200ms", func(c *Config) *time.Duration { return &c.ApplyDelay })},
	{"COMMITMAXEVENTS", "10000", "most events journaled in one group commit, and applied to the store in one transaction", false, integer(1, func(c *Config) *int { return &c.CommitMaxBatch })},
	{"SHUTDOWNGRACE", "10s", "how long shutdown waits for in-flight requests and commits", false, duration(0, "10s", func(c *Config) *time.Duration { return &c.ShutdownGrace })},
	{"WRITERNICE", "-10", "nice value (-20 to 0) of the embedded store's single writer thread, which bounds ingest: it then gets a CPU before the request handlers (Linux; needs CAP_SYS_NICE or RLIMIT_NICE, e.g. systemd LimitNICE=; without, it is logged and ignored; 0: leave it)", false, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < -20 || n > 0 {
			return errors.New("must be an integer from -20 to 0")
		}
		c.WriterNice = n
		return nil
	}},
	{"DUCKDB_THREADS", "0", "DuckDB worker threads (0: one per CPU but one, at least 1)", false, integer(0, func(c *Config) *int { return &c.DuckDBThreads })},
	{"DUCKDB_MEMORY_LIMIT", "", "DuckDB memory_limit (empty: the store default, 128MB; raise it if the log shows DuckDB out-of-memory errors)", false, str(func(c *Config) *string { return &c.DuckDBMemoryLimit })},
	{"POSTGRES_DSN", "", "PostgreSQL database shared by several nodes (postgres://user:pass@host/db?sslmode=...); empty: embedded DuckDB in DATADIR", true, func(c *Config, v string) error {
		c.PostgresDSN = v
		if v != "" && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") && !strings.Contains(v, "=") {
			return errors.New("must be a postgres:// URL or key=value connection string")
		}
		return nil
	}},
	{"POSTGRES_MAXCONNS", "8", "PostgreSQL connections per node (pool size; the live feed listener uses one more)", false, integer(2, func(c *Config) *int { return &c.PostgresMaxConns })},
	{"POSTGRES_MEMO_MB", "64", "per-node memory for what the statistics read of closed time ranges (postgres/memo.go); 0 turns it off", false, integer(0, func(c *Config) *int { return &c.PostgresMemoMB })},
	{"HPFEEDS_HOST", "", "hpfeeds broker to subscribe to (empty: no hpfeeds ingestion)", false, str(func(c *Config) *string { return &c.HpfeedsHost })},
	{"HPFEEDS_PORT", "10000", "hpfeeds broker port", false, integer(1, func(c *Config) *int { return &c.HpfeedsPort })},
	{"HPFEEDS_IDENT", "", "hpfeeds ident", false, str(func(c *Config) *string { return &c.HpfeedsIdent })},
	{"HPFEEDS_SECRET", "", "hpfeeds secret", true, str(func(c *Config) *string { return &c.HpfeedsSecret })},
	{"HPFEEDS_CHANNELS", "", "comma-separated hpfeeds channels to subscribe to", false, func(c *Config, v string) error {
		c.HpfeedsChannels = nil
		for _, ch := range strings.Split(v, ",") {
			if ch = strings.TrimSpace(ch); ch != "" {
				c.HpfeedsChannels = append(c.HpfeedsChannels, ch)
			}
		}
		return nil
	}},
	{"HPFEEDS_TLS", "off", "connect to the hpfeeds broker with TLS: on or off", false, func(c *Config, v string) error {
		switch v {
		case "on", "true":
			c.HpfeedsTLS = true
		case "off", "false":
			c.HpfeedsTLS = false
		default:
			return errors.New("must be on or off")
		}
		return nil
	}},
	{"HPFEEDS_DOMAIN", "community", "data domain of events received over hpfeeds: community or private", false, func(c *Config, v string) error {
		if v != "community" && v != "private" {
			return errors.New("must be community or private")
		}
		c.HpfeedsDomain = v
		return nil
	}},
	{"RATELIMIT_ADDRESS", "1000", "alerts per second accepted from one source address (IPv6: one /64); 0 = no limit", false, integer(0, func(c *Config) *int { return &c.RateAddress })},
	{"RATELIMIT_ADDRESS_BURST", "10000", "alerts one source address may send at once before RATELIMIT_ADDRESS applies", false, integer(1, func(c *Config) *int { return &c.RateAddressBurst })},
	{"RATELIMIT_USER", "0", "alerts per second accepted from one user (the community user is shared by every T-Pot); 0 = no limit", false, integer(0, func(c *Config) *int { return &c.RateUser })},
	{"RATELIMIT_USER_BURST", "100000", "alerts one user may send at once before RATELIMIT_USER applies", false, integer(1, func(c *Config) *int { return &c.RateUserBurst })},
	{"RATELIMIT_SENSOR", "500", "alerts per second accepted from one sensor (user + peerIdent); 0 = no limit", false, integer(0, func(c *Config) *int { return &c.RateSensor })},
	{"RATELIMIT_SENSOR_BURST", "5000", "alerts one sensor may send at once before RATELIMIT_SENSOR applies", false, integer(1, func(c *Config) *int { return &c.RateSensorBurst })},
	{"BLOCKSENSORS", "", "comma-separated usernames or sensor idents (peerIdent) whose batches are refused with 403", false, func(c *Config, v string) error {
		c.BlockSensors = splitList(v)
		return nil
	}},
	{"BLOCKADDRESSES", "", "comma-separated source CIDRs or addresses whose batches are refused with 403", false, prefixes(func(c *Config) *[]netip.Prefix { return &c.BlockAddresses })},
	{"TRUSTEDPROXIES", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (empty: never trusted)", false, prefixes(func(c *Config) *[]netip.Prefix { return &c.TrustedProxies })},
	{"DEBUGADDR", "", "if set, serve Go profiling (net/http/pprof) on this address, e.g. 127.0.0.1:6060", false, str(func(c *Config) *string { return &c.DebugAddr })},
	{"DASHBOARD", "on", "serve the built-in dashboard: on or off", false, func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "on", "true", "1", "yes":
			c.Dashboard = true
		case "off", "false", "0", "no":
			c.Dashboard = false
		default:
			return errors.New("must be on or off")
		}
		return nil
	}},
	{"DASHBOARDPATH", "/", "path of the dashboard, e.g. /dashboard/ to keep PEBA's redirect of / to CORSDOMAIN", false, func(c *Config, v string) error {
		if err := dashboard.ValidatePath(v); err != nil {
			return err
		}
		// The first segment must not be one of the service's own routes.
		first, _, _ := strings.Cut(strings.TrimPrefix(v, "/"), "/")
		switch first {
		case "alert", "ews-0.1", "api", "socket.io", "auth", "sensors", "stats", "geocode", "feeds",
			"heartbeat", "healthz", "readyz", "metrics", "debug":
			return fmt.Errorf("/%s/ is used by the service's API", first)
		}
		c.DashboardPath = v
		return nil
	}},
	{"LOGLEVEL", "info", "log level: debug, info, warn, error", false, func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "debug", "info", "warn", "error":
			c.LogLevel = strings.ToLower(v)
			return nil
		}
		return errors.New("must be debug, info, warn or error")
	}},
	{"LOGFORMAT", "text", "log format: text or json", false, func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return errors.New("must be text or json")
		}
		c.LogFormat = v
		return nil
	}},
}

// Load builds the configuration for a subcommand from args (flags), the
// environment and the config file named by -config or PEBA_CONFIG. The flag
// set is returned so that subcommands can read positional arguments.
// extra may declare subcommand-specific flags on the set before parsing.
func Load(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (*Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("PEBA_CONFIG"), "config file (KEY = value lines; PEBA's peba.cfg works)")
	flagVals := map[string]*string{}
	for _, o := range options {
		flagVals[o.name] = fs.String(strings.ToLower(o.name), "", o.help+" (env PEBA_"+o.name+", default "+quoteDefault(o)+")")
	}
	if extra != nil {
		extra(fs)
	}
	if err := parseInterspersed(fs, args); err != nil {
		return nil, nil, err
	}
	vals := map[string]string{}
	for _, o := range options {
		vals[o.name] = o.def
	}
	if *configPath != "" {
		fileVals, err := readFile(*configPath)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range fileVals {
			if _, known := vals[k]; known {
				vals[k] = v
			}
			// Unknown keys are ignored on purpose: PEBA's peba.cfg carries
			// ELASTICSEARCH_HOST, MEMCACHE, ... that mean nothing here.
		}
	}
	applyAliases(vals, getenv)
	for _, o := range options {
		if v, ok := lookupEnv(getenv, "PEBA_"+o.name); ok {
			vals[o.name] = v
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if p, ok := flagVals[strings.ToUpper(f.Name)]; ok {
			vals[strings.ToUpper(f.Name)] = *p
		}
	})
	c := &Config{effective: vals}
	var problems []string
	for _, o := range options {
		if err := o.set(c, vals[o.name]); err != nil {
			problems = append(problems, fmt.Sprintf("%s=%q: %v", o.name, display(o, vals[o.name]), err))
		}
	}
	if len(problems) == 0 {
		problems = c.validate()
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return c, fs, nil
}

// seckcAliases maps SecKC MHN Dashboard API environment names (seckc.md §1)
// to options, so its env file works unchanged. They rank above the config
// file and below PEBA_* variables and flags.
var seckcAliases = []struct{ env, option string }{
	{"HPFEEDS_HOST", "HPFEEDS_HOST"},
	{"HPFEEDS_PORT", "HPFEEDS_PORT"},
	{"HPFEEDS_USER", "HPFEEDS_IDENT"},
	{"HPFEEDS_IDENT", "HPFEEDS_IDENT"},
	{"HPFEEDS_SECRET", "HPFEEDS_SECRET"},
	{"HPFEEDS_CHANNELS", "HPFEEDS_CHANNELS"}, // comma-separated, as SecKC splits it
}

// applyAliases overlays the SecKC names that are set in the environment.
// HOST and PORT (SecKC's listen address, run.py) replace the host or the
// port of BINDHOST; DEBUG=true selects LOGLEVEL=debug.
func applyAliases(vals map[string]string, getenv func(string) string) {
	if getenv == nil {
		return
	}
	for _, a := range seckcAliases {
		if v, ok := lookupEnv(getenv, a.env); ok {
			vals[a.option] = v
		}
	}
	host, port := getenv("HOST"), getenv("PORT")
	if host != "" || port != "" {
		h, p, err := net.SplitHostPort(vals["BINDHOST"])
		if err != nil {
			h, p = vals["BINDHOST"], ""
		}
		if host != "" {
			h = host
		}
		if port != "" {
			p = port
		}
		vals["BINDHOST"] = net.JoinHostPort(h, p)
	}
	if strings.EqualFold(getenv("DEBUG"), "true") {
		vals["LOGLEVEL"] = "debug"
	}
}

// parseInterspersed parses flags that may follow positional arguments
// (`peba user add alice --token T`); the standard flag package stops at the
// first positional argument. After parsing, fs.Args() holds the positional
// arguments in order. "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func (c *Config) validate() []string {
	var p []string
	if c.BindHost == "" {
		p = append(p, "BINDHOST must not be empty")
	}
	if c.DataDir == "" {
		p = append(p, "DATADIR must not be empty")
	}
	if c.CommunityUser == "" || c.CommunityToken == "" {
		p = append(p, "COMMUNITYUSER and COMMUNITYTOKEN must not be empty")
	}
	if c.HpfeedsHost != "" && (c.HpfeedsIdent == "" || c.HpfeedsSecret == "" || len(c.HpfeedsChannels) == 0) {
		p = append(p, "HPFEEDS_HOST needs HPFEEDS_IDENT, HPFEEDS_SECRET and HPFEEDS_CHANNELS")
	}
	if c.CommitMaxBatch > c.QueueEvents {
		p = append(p, "COMMITMAXEVENTS must not exceed QUEUEEVENTS")
	}
	return p
}

// Dump returns the effective configuration, one KEY = value line each,
// sorted, with secrets masked, for the startup log.
func (c *Config) Dump() []string {
	out := make([]string, 0, len(options))
	for _, o := range options {
		out = append(out, o.name+" = "+display(o, c.effective[o.name]))
	}
	sort.Strings(out)
	return out
}

func quoteDefault(o option) string {
	if o.secret {
		return "PEBA's public default"
	}
	return strconv.Quote(o.def)
}

func display(o option, v string) string {
	if o.secret {
		return "********"
	}
	return v
}

func lookupEnv(getenv func(string) string, key string) (string, bool) {
	if getenv == nil {
		return "", false
	}
	v := getenv(key)
	if v != "" {
		return v, true
	}
	// PEBA_COMMUNITYTOKEN_FILE style: read a secret from a file.
	if path := getenv(key + "_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err == nil {
			return strings.TrimRight(string(b), "\r\n"), true
		}
	}
	return "", false
}

// readFile reads KEY = value lines. It accepts PEBA 1.x's peba.cfg, which is
// Python syntax limited in practice to KEY = "string" / number / True/False
// lines and # comments.
func readFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open config file: %w", err)
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s line %d: expected KEY = value", path, n)
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		} else if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		vals[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read config file: %w", err)
	}
	return vals, nil
}
