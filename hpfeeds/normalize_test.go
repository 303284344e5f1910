package hpfeeds

import (
	"crypto/md5"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

var now = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// want lists the fields a case checks; "" / zero values are checked too
// except where noted.
type want struct {
	peerType           string
	src                string
	sport              int32
	dst                string // "" = no destination address
	dport              int32
	transport          string
	protocol           string // AdditionalData "protocol"; "" = absent
	created            time.Time
	user, pass, login  string
	url, version       string
	md5                string
	rawHTTPHasPrefix   string
	externalIP, fields string // fields: a "key=value" that must be in Fields
}

func field(e peba.Event, k string, list []peba.Attr) string {
	for _, a := range list {
		if a.Key == k {
			return a.Value
		}
	}
	return ""
}

func addrOf(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

// Payloads are the examples of seckc.md §7.2 (fields required by
// Mnemosyne where the reference gives no full example).
var cases = []struct {
	channel, payload string
	want             want
}{
	{"cowrie.sessions", `{"session":"a1b2c3d4e5f6","startTime":"2025-01-10T12:00:00.123456Z","endTime":"2025-01-10T12:00:09.654321Z","tags":["seckc"],"peerIP":"203.0.113.7","peerPort":51234,"hostIP":"10.0.0.5","hostPort":2222,"loggedin":["root","123456"],"credentials":[["admin","admin"],["root","root"]],"commands":["uname -a"],"unknownCommands":[],"urls":[],"version":"SSH-2.0-Go","ttylog":null,"hashes":[],"protocol":"ssh","width":80,"height":24}`,
		want{peerType: "SSH/console(cowrie)", src: "203.0.113.7", sport: 51234, dst: "10.0.0.5", dport: 2222, transport: "tcp", protocol: "ssh",
			created: time.Date(2025, 1, 10, 12, 0, 0, 123456000, time.UTC), user: "root", pass: "123456", login: "Success", version: "SSH-2.0-Go", fields: `commands=["uname -a"]`}},
	{"cowrie.sessions", `{"session":"x","startTime":"2025-01-10T12:00:00Z","peerIP":"203.0.113.7","peerPort":1,"hostIP":"10.0.0.5","hostPort":23,"loggedin":null,"credentials":[["admin","admin"],["root","toor"]],"urls":["http://198.51.100.1/x.sh"],"protocol":"telnet"}`,
		want{peerType: "SSH/console(cowrie)", src: "203.0.113.7", sport: 1, dst: "10.0.0.5", dport: 23, transport: "tcp", protocol: "telnet",
			created: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC), user: "root", pass: "toor", login: "Fail", url: "http://198.51.100.1/x.sh"}},
	{"kippo.sessions", `{"peerIP":"198.51.100.9","peerPort":4000,"hostIP":"10.0.0.6","hostPort":22,"credentials":[["pi","raspberry"]],"version":"SSH-2.0-libssh"}`,
		want{peerType: "SSH/console(cowrie)", src: "198.51.100.9", sport: 4000, dst: "10.0.0.6", dport: 22, transport: "tcp", protocol: "ssh", created: now, user: "pi", pass: "raspberry", login: "Fail", version: "SSH-2.0-libssh"}},
	{"dionaea.connections", `{"connection_type":"accept","connection_transport":"tcp","connection_protocol":"smbd","remote_host":"::ffff:198.51.100.23","remote_port":50112,"remote_hostname":"","local_host":"10.0.0.5","local_port":445}`,
		want{peerType: "Network(Dionaea)", src: "198.51.100.23", sport: 50112, dst: "10.0.0.5", dport: 445, transport: "tcp", protocol: "smbd", created: now, fields: "connection_type=accept"}},
	{"dionaea.capture", `{"time":"2025-01-10 12:00:00.123456 UTC +0000","saddr":"118.167.12.21","sport":"3006","daddr":"134.61.128.61","dport":"445","md5":"0724c68f973e4e35391849cfb5259f86","sha512":"8cbc09fd2","url":"http://118.167.12.21:1852/psgmioap"}`,
		want{peerType: "Network(Dionaea)", src: "118.167.12.21", sport: 3006, dst: "134.61.128.61", dport: 445, protocol: "microsoft-ds",
			created: time.Date(2025, 1, 10, 12, 0, 0, 123456000, time.UTC), url: "http://118.167.12.21:1852/psgmioap", md5: "0724c68f973e4e35391849cfb5259f86"}},
	{"dionaea.captures", `{"event_type":"FTP login event","saddr":"192.0.2.50","sport":"40000","daddr":"10.0.0.5","dport":"21","username":"anonymous","password":"x@y","tags":[]}`,
		want{peerType: "Network(Dionaea)", src: "192.0.2.50", sport: 40000, dst: "10.0.0.5", dport: 21, protocol: "ftp", created: now, user: "anonymous", pass: "x@y"}},
	{"conpot.events", `{"id":"069db6a6-5faa-4f3a-8de0-ce90af0e7b2c","remote":["12.34.43.21",45358],"src_ip":"12.34.43.21","src_port":45358,"local":["10.0.0.5",502],"dst_ip":"10.0.0.5","dst_port":502,"data_type":"modbus","timestamp":"2025-01-10T12:00:00.123456","public_ip":"203.0.113.50","data":{"function_code":3,"slave_id":1,"request":"0300000002","response":"030400000001"},"tags":[]}`,
		want{peerType: "Industrial(conpot)", src: "12.34.43.21", sport: 45358, dst: "10.0.0.5", dport: 502, transport: "tcp", protocol: "modbus",
			created: time.Date(2025, 1, 10, 12, 0, 0, 123456000, time.UTC), externalIP: "203.0.113.50", fields: `data={"function_code":3,"slave_id":1,"request":"0300000002","response":"030400000001"}`}},
	{"conpot.events", `{"id":"1","remote":["12.34.43.22",1000],"data_type":"s7comm","timestamp":"2025-01-10T12:00:00","public_ip":"203.0.113.50","data":{"0":{"type":"NEW_CONNECTION"}}}`,
		want{peerType: "Industrial(conpot)", src: "12.34.43.22", sport: 1000, dport: 502, transport: "tcp", protocol: "s7comm",
			created: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC), externalIP: "203.0.113.50"}},
	{"glastopf.events", `{"time":"2025-01-10 12:00:00","source":["203.0.113.9",40112],"request_url":"/phpMyAdmin/index.php","request_raw":"GET /phpMyAdmin/index.php HTTP/1.1\r\nHost: 10.0.0.5\r\n\r\n","pattern":"unknown","filename":null,"file_sha256":null,"version":"3.1.3","sensorid":"abc","known_file":false}`,
		want{peerType: "Webpage", src: "203.0.113.9", sport: 40112, dport: 80, transport: "tcp", protocol: "http",
			created: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC), url: "/phpMyAdmin/index.php", rawHTTPHasPrefix: "GET /phpMyAdmin", fields: "known_file=false"}},
	{"snort.alerts", `{"sensor":"uuid-1","timestamp":"2025/01/10 12:00:00.123456","header":"1:2010935:3","classification":3,"priority":2,"signature":"ET POLICY Suspicious inbound to MSSQL port 1433","proto":"TCP","source_port":41234,"destination_port":1433,"source_ip":"203.0.113.5","destination_ip":"10.0.0.5","ttl":240,"tos":0,"id":54321,"iplen":20,"dgmlen":40,"tcpflags":"******S*"}`,
		want{peerType: "Network(snort)", src: "203.0.113.5", sport: 41234, dst: "10.0.0.5", dport: 1433, transport: "tcp", protocol: "TCP",
			created: time.Date(2025, 1, 10, 12, 0, 0, 123456000, time.UTC), fields: "signature=ET POLICY Suspicious inbound to MSSQL port 1433"}},
	{"snort.alerts", `{"sensor":"uuid-1","timestamp":"2025/01/10 12:00:01.000000","header":"1:1:1","signature":"ICMP PING","proto":"ICMP","source_ip":"203.0.113.5","destination_ip":"10.0.0.5","icmptype":8,"icmpcode":0}`,
		want{peerType: "Network(snort)", src: "203.0.113.5", sport: peba.NoPort, dst: "10.0.0.5", dport: peba.NoPort, transport: "icmp", protocol: "ICMP",
			created: time.Date(2025, 1, 10, 12, 0, 1, 0, time.UTC)}},
	{"suricata.events", `{"source_ip":"198.51.100.77","destination_ip":"10.0.0.5","proto":"UDP","source_port":5060,"destination_port":5060,"action":"allowed","signature":"ET SCAN Sipvicious","signature_id":2008578,"signature_rev":6,"sensor":"s1"}`,
		want{peerType: "Network(suricata)", src: "198.51.100.77", sport: 5060, dst: "10.0.0.5", dport: 5060, transport: "udp", protocol: "UDP", created: now, fields: "signature_id=2008578"}},
	{"p0f.events", `{"timestamp":"2025/01/10 12:00:00","mod":"syn","client_ip":"203.0.113.8","server_ip":"10.0.0.5","client_port":51111,"server_port":22,"subject":"cli","os":"Linux 3.11 and newer","dist":"0","params":"none","raw_sig":"4:64+0:0:1460:mss*20,7:mss,sok,ts,nop,ws:df,id+:0"}`,
		want{peerType: "Network(p0f)", src: "203.0.113.8", sport: 51111, dst: "10.0.0.5", dport: 22, transport: "tcp", protocol: "pcap",
			created: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC), fields: "os=Linux 3.11 and newer"}},
	{"amun.events", `{"attackerIP":"192.0.2.4","attackerPort":3333,"victimIP":"10.0.0.5","victimPort":135,"connectionType":"Initial"}`,
		want{peerType: "Network(amun)", src: "192.0.2.4", sport: 3333, dst: "10.0.0.5", dport: 135, transport: "tcp", protocol: "dcom-scm", created: now}},
	{"wordpot.events", `{"source_ip":"192.0.2.10","source_port":5555,"dest_ip":"10.0.0.5","dest_port":80,"url":"/wp-login.php","username":"admin","password":"admin123","plugin":""}`,
		want{peerType: "Webpage(wordpot)", src: "192.0.2.10", sport: 5555, dst: "10.0.0.5", dport: 80, transport: "tcp", protocol: "http", created: now, url: "/wp-login.php", user: "admin", pass: "admin123"}},
	{"shockpot.events", `{"source_ip":"192.0.2.11","dest_host":"10.0.0.5","dest_port":80,"url":"http://10.0.0.5/cgi-bin/test.cgi","command":"() { :;}; /bin/bash -c 'wget x'","is_shellshock":true}`,
		want{peerType: "Webpage(shockpot)", src: "192.0.2.11", sport: peba.NoPort, dst: "10.0.0.5", dport: 80, transport: "tcp", protocol: "http", created: now, url: "http://10.0.0.5/cgi-bin/test.cgi"}},
	{"elastichoney.events", `{"source":"192.0.2.12","honeypot":"10.0.0.5","type":"attack","url":"/_search?source=x","payload":"{}","@timestamp":"2025-01-10T12:00:00.000Z"}`,
		want{peerType: "Service(elastichoney)", src: "192.0.2.12", sport: peba.NoPort, dst: "10.0.0.5", dport: 9200, transport: "tcp", protocol: "http",
			created: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC), url: "/_search?source=x"}},
	{"elasticpot.events", `{"src_ip":"192.0.2.13","src_port":4444,"dst_ip":"10.0.0.5","dst_port":9200,"url":"/","timestamp":"2025-01-10T12:00:00Z"}`,
		want{peerType: "Service(ES)", src: "192.0.2.13", sport: 4444, dst: "10.0.0.5", dport: 9200, transport: "tcp", protocol: "elasticsearch", created: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC), url: "/"}},
	{"rdphoney.sessions", `{"peerIP":"192.0.2.14","peerPort":4000,"hostIP":"10.0.0.5","hostPort":3389,"username":"Administrator","data":""}`,
		want{peerType: "RDP(rdphoney)", src: "192.0.2.14", sport: 4000, dst: "10.0.0.5", dport: 3389, transport: "tcp", protocol: "rdp", created: now, user: "Administrator"}},
	{"uhp.events", `{"src_ip":"192.0.2.15","src_port":4001,"dest_port":25}`,
		want{peerType: "Network(uhp)", src: "192.0.2.15", sport: 4001, dport: 25, transport: "tcp", created: now}},
	{"spylex.events", `{"src_ip":"192.0.2.16","src_port":4002,"dst_port":8080,"method":"GET","path":"/admin"}`,
		want{peerType: "Webpage(spylex)", src: "192.0.2.16", sport: 4002, dport: 8080, transport: "tcp", protocol: "http", created: now, url: "/admin"}},
	{"big-hp.events", `{"src_ip":"192.0.2.17","src_port":4003,"dst_port":80,"method":"POST","path":"/login"}`,
		want{peerType: "Webpage(big-hp)", src: "192.0.2.17", sport: 4003, dport: 80, transport: "tcp", protocol: "http", created: now, url: "/login"}},
	{"ssh-auth-logger.events", `{"src":"192.0.2.18","spt":4004,"dpt":22,"client_version":"SSH-2.0-PuTTY","duser":"oracle","password":"oracle"}`,
		want{peerType: "SSH/console(ssh-auth-logger)", src: "192.0.2.18", sport: 4004, dport: 22, transport: "tcp", protocol: "ssh", created: now, user: "oracle", pass: "oracle", version: "SSH-2.0-PuTTY"}},
	{"honeydb-agent.events", `{"remote_host":"192.0.2.19","remote_port":4005,"local_host":"10.0.0.5","local_port":6379,"service":"REDIS","event":"DATA_RECEIVED","bytes":14,"data":"494e464f0d0a"}`,
		want{peerType: "Network(honeydb-agent)", src: "192.0.2.19", sport: 4005, dst: "10.0.0.5", dport: 6379, protocol: "REDIS", created: now}},
	{"beeswarm.hive", `{"attacker_ip":"192.0.2.20","attacker_source_port":4006,"honey_port":21,"honey_ip":"10.0.0.5","protocol":"ftp","timestamp":"2025-01-10T12:00:00.5","login_attempts":[{"username":"a","password":"b"},{"username":"ftp","password":"ftp"}]}`,
		want{peerType: "Passwords(beeswarm)", src: "192.0.2.20", sport: 4006, dst: "10.0.0.5", dport: 21, transport: "tcp", protocol: "ftp",
			created: time.Date(2025, 1, 10, 12, 0, 0, 500000000, time.UTC), user: "ftp", pass: "ftp"}},
	{"agave.events", `{"SrcIp":"192.0.2.21","SrcPort":4007,"DestIp":"10.0.0.5","DestPort":80,"AgaveApp":"drupot","Protocol":"http"}`,
		want{peerType: "Webpage(drupot)", src: "192.0.2.21", sport: 4007, dst: "10.0.0.5", dport: 80, transport: "tcp", protocol: "http", created: now}},
	{"drupot.events", `{"SrcIp":"192.0.2.22","SrcPort":4008,"DestIp":"10.0.0.5","DestPort":80}`,
		want{peerType: "Webpage(drupot)", src: "192.0.2.22", sport: 4008, dst: "10.0.0.5", dport: 80, transport: "tcp", protocol: "http", created: now}},
}

func TestNormalizeChannels(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.channel] = true
		t.Run(c.channel, func(t *testing.T) {
			evs, err := Normalize(c.channel, "sensor-uuid-1", []byte(c.payload), now)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("%d events", len(evs))
			}
			e, w := evs[0], c.want
			check := func(name string, got, want any) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			check("PeerType", e.PeerType, w.peerType)
			check("SrcIP", e.SrcIP, addrOf(w.src))
			check("SrcPort", e.SrcPort, w.sport)
			check("DstIP", e.DstIP, addrOf(w.dst))
			check("DstPort", e.DstPort, w.dport)
			check("Transport", e.Transport, w.transport)
			check("protocol", field(e, "protocol", e.AdditionalData), w.protocol)
			check("CreateTime", e.CreateTime, w.created)
			check("Username", e.Username, w.user)
			check("Password", e.Password, w.pass)
			check("Login", e.Login, w.login)
			check("URL", e.URL, w.url)
			check("ClientVersion", e.ClientVersion, w.version)
			check("PayloadMD5", e.PayloadMD5, w.md5)
			check("ExternalIP", e.ExternalIP, w.externalIP)
			check("Origin", e.Origin, "hpfeeds")
			check("PeerIdent", e.PeerIdent, "sensor-uuid-1")
			check("Submitter", e.Submitter, "sensor-uuid-1")
			check("ID", e.ID, EventID(c.channel, "sensor-uuid-1", []byte(c.payload), 0))
			if !strings.HasPrefix(e.RawHTTP, w.rawHTTPHasPrefix) || (w.rawHTTPHasPrefix == "") != (e.RawHTTP == "") {
				t.Errorf("RawHTTP = %q", e.RawHTTP)
			}
			if w.fields != "" {
				k, v, _ := strings.Cut(w.fields, "=")
				check("Fields["+k+"]", field(e, k, e.Fields), v)
			}
		})
	}
	for ch := range channels {
		if !covered[ch] && ch != "dionaea.capture.anon" {
			t.Errorf("channel %s has no test case", ch)
		}
	}
}

func TestNormalizeInvalidKnownPayloads(t *testing.T) {
	for _, c := range []struct{ channel, payload string }{
		{"cowrie.sessions", `["not","an","object"]`},
		{"cowrie.sessions", `{"peerIP":"not-an-ip"}`},
		{"dionaea.connections", `{"remote_host":"1.2.3.4"} trailing`},
		{"snort.alerts", `not json`},
		{"glastopf.events", `{"source":"1.2.3.4"}`},
	} {
		if _, err := Normalize(c.channel, "id", []byte(c.payload), now); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%s, %s) err = %v, want ErrInvalid", c.channel, c.payload, err)
		}
	}
}

func TestNormalizeImplausibleTimeIsNow(t *testing.T) {
	for _, ts := range []string{"1970-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "yesterday"} {
		evs, err := Normalize("cowrie.sessions", "id", []byte(`{"peerIP":"192.0.2.1","startTime":"`+ts+`"}`), now)
		if err != nil || !evs[0].CreateTime.Equal(now) {
			t.Errorf("startTime %s: CreateTime = %v, %v", ts, evs[0].CreateTime, err)
		}
	}
}

func TestEventIDRule(t *testing.T) {
	p := []byte(`{"peerIP":"192.0.2.1"}`)
	a, _ := Normalize("cowrie.sessions", "s1", p, now)
	b, _ := Normalize("cowrie.sessions", "s1", p, now.Add(time.Hour)) // replay, other broker, later
	if a[0].ID != b[0].ID || len(a[0].ID) != 32 {
		t.Fatalf("IDs %q %q: the same message must get the same 32-hex ID", a[0].ID, b[0].ID)
	}
	ids := map[string]bool{a[0].ID: true}
	for _, id := range []string{
		EventID("cowrie.sessions", "s2", p, 0),
		EventID("kippo.sessions", "s1", p, 0),
		EventID("cowrie.sessionss", "1", p, 0), // length prefix: no ambiguity
		EventID("cowrie.sessions", "s1", p, 1),
		EventID("cowrie.sessions", "s1", append(p, ' '), 0),
	} {
		if ids[id] {
			t.Fatalf("ID collision %s", id)
		}
		ids[id] = true
	}
}

func TestNormalizeUnknownChannel(t *testing.T) {
	evs, err := Normalize("mypot.events", "s1", []byte(`{"src_ip":"192.0.2.30","src_port":"1234","dest_port":8443,"timestamp":"2025-01-10T12:00:00Z","note":"hi","nested":{"a":[1,2]}}`), now)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	if e.PeerType != "hpfeeds(mypot.events)" || e.SrcIP != addrOf("192.0.2.30") || e.SrcPort != 1234 || e.DstPort != 8443 ||
		!e.CreateTime.Equal(time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)) || field(e, "nested", e.Fields) != `{"a":[1,2]}` || field(e, "note", e.Fields) != "hi" {
		t.Fatalf("event = %+v", e)
	}
	// Text that is not JSON is kept as text; binary as a payload.
	evs, err = Normalize("thug.events", "s1", []byte("<MAEC_Bundle/>"), now)
	if err != nil || field(evs[0], "payload", evs[0].Requests) != "<MAEC_Bundle/>" || evs[0].SrcIP.IsValid() || evs[0].CreateTime != now {
		t.Fatalf("text payload: %+v %v", evs, err)
	}
	bin := []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff")
	evs, err = Normalize("mwbinary.dionaea.sensorunique", "s1", bin, now)
	if err != nil || evs[0].Payload == nil || evs[0].PayloadMD5 != fmt.Sprintf("%x", md5.Sum(bin)) || evs[0].Payload.MD5 != evs[0].PayloadMD5 ||
		string(evs[0].Payload.Data) != string(bin) || !strings.HasPrefix(field(evs[0], "payload_hex", evs[0].Requests), "4d5a90") {
		t.Fatalf("binary payload: %+v %v", evs, err)
	}
	// Bounds: a 1 MiB string value is truncated and the truncation recorded.
	big := `{"src_ip":"192.0.2.1","blob":"` + strings.Repeat("a", 1<<20) + `"}`
	evs, err = Normalize("x", "s1", []byte(big), now)
	if err != nil || len(field(evs[0], "blob", evs[0].Fields)) != maxFieldBytes || field(evs[0], "_truncated", evs[0].Fields) != "blob" {
		t.Fatalf("bounded field: %v", err)
	}
}

// ewsposter's hpfeeds output: one <Alert> (hpfformat=ews) or its xmltodict
// JSON (hpfformat=json), ewsposter.md §2.1 and §4.
const ewsAlert = `<Alert><Analyzer id="cowrie-community-01"/><CreateTime tz="+0000">2026-11-20 08:00:01</CreateTime>` +
	`<Source category="ipv4" port="40468" protocol="tcp">216.160.83.56</Source><Target category="ipv4" port="22" protocol="tcp">81.2.69.142</Target>` +
	`<Request type="description">SSH Honeypot Cowrie</Request>` +
	`<AdditionalData type="string" meaning="username">root</AdditionalData><AdditionalData type="string" meaning="password">1234</AdditionalData>` +
	`<AdditionalData type="string" meaning="uuid">6f1c2a7e-0000-4000-8000-000000000001</AdditionalData></Alert>`

const ewsJSON = `{"Alert": {"Analyzer": {"@id": "cowrie-community-01"}, "CreateTime": {"@tz": "+0000", "#text": "2026-11-20 08:00:01"},
 "Source": {"@category": "ipv4", "@port": "40468", "@protocol": "tcp", "#text": "216.160.83.56"},
 "Target": {"@category": "ipv4", "@port": "22", "@protocol": "tcp", "#text": "81.2.69.142"},
 "Request": {"@type": "description", "#text": "SSH Honeypot Cowrie"},
 "AdditionalData": [{"@type": "string", "@meaning": "username", "#text": "root"}, {"@type": "string", "@meaning": "password", "#text": "1234"},
  {"@type": "string", "@meaning": "uuid", "#text": "6f1c2a7e-0000-4000-8000-000000000001"}]}}`

func TestNormalizeEwsposter(t *testing.T) {
	for name, payload := range map[string]string{
		"xml":          ewsAlert,
		"xml decl":     `<?xml version="1.0"?>` + "\n" + ewsAlert,
		"json":         ewsJSON,
		"json no root": ewsJSON[len(`{"Alert": `) : len(ewsJSON)-1],
	} {
		t.Run(name, func(t *testing.T) {
			evs, err := Normalize("tpot", "tpot-sensor", []byte(payload), now)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("%d events", len(evs))
			}
			e := evs[0]
			if e.PeerType != "SSH/console(cowrie)" || e.PeerIdent != "cowrie-community-01" || e.Submitter != "tpot-sensor" || e.Origin != "hpfeeds" ||
				e.SrcIP != addrOf("216.160.83.56") || e.SrcPort != 40468 || e.DstIP != addrOf("81.2.69.142") || e.DstPort != 22 ||
				e.Username != "root" || e.Password != "1234" || e.SensorUUID != "6f1c2a7e-0000-4000-8000-000000000001" ||
				!e.CreateTime.Equal(time.Date(2026, 11, 20, 8, 0, 1, 0, time.UTC)) || e.ID != EventID("tpot", "tpot-sensor", []byte(payload), 0) {
				t.Fatalf("event = %+v", e)
			}
		})
	}
	for name, payload := range map[string]string{
		"xml source not an IP": `<Alert><Analyzer id="x"/><CreateTime tz="+0000">2026-11-20 08:00:01</CreateTime><Source>nope</Source></Alert>`,
		"broken xml":           `<Alert><Analyzer id="x">`,
		"bad element name":     `{"Alert": {"Analyzer": {"@id": "x"}, "Source": {"<evil>": "1"}}}`,
		"deep":                 `{"Alert":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 41),
	} {
		if _, err := Normalize("tpot", "s", []byte(payload), now); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, c := range cases {
		f.Add(c.channel, []byte(c.payload))
	}
	f.Add("tpot", []byte(ewsAlert))
	f.Add("tpot", []byte(ewsJSON))
	f.Add("x", []byte{0xff, 0})
	f.Fuzz(func(t *testing.T, channel string, payload []byte) {
		evs, err := Normalize(channel, "ident", payload, now)
		if err != nil {
			if len(evs) != 0 {
				t.Fatal("events with an error")
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("no events and no error")
		}
		for _, e := range evs {
			if len(e.ID) != 32 || e.Origin != "hpfeeds" || e.CreateTime.IsZero() {
				t.Fatalf("event %+v", e)
			}
			for _, a := range e.Fields {
				if len(a.Value) > maxFieldBytes {
					t.Fatalf("unbounded field %s", a.Key)
				}
			}
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	for _, c := range []struct{ name, channel, payload string }{
		{"cowrie", cases[0].channel, cases[0].payload},
		{"ews-json", "tpot", ewsJSON},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := []byte(c.payload)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(c.channel, "sensor", p, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
