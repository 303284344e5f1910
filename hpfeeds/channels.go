package hpfeeds

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	"github.com/peba-go/peba"
)

// spec describes how one channel's JSON payload maps to an event, after
// Mnemosyne's normalizer for that channel (seckc.md §7.2). Key fields name
// payload keys; "" means the payload has no such key.
type spec struct {
	peerType                       string
	srcIP, srcPort, dstIP, dstPort string
	fixedDstPort                   int32  // when dstPort is "": Mnemosyne's hard-coded port
	transport                      string // fixed transport, or
	transportKey                   string // key holding it
	protocol                       string // application protocol (Mnemosyne's session.protocol), or
	protocolKey                    string // key holding it (wins when present)
	timeKey                        string // payload timestamp; without one, CreateTime = receive time as in Mnemosyne
	extra                          func(o *object, e *peba.Event, protocol *string)
}

// Peer types follow package ews's table where the honeypot is the same
// (cowrie and kippo, dionaea, glastopf, conpot, suricata, elasticpot,
// wordpot), and its "Category(name)" style otherwise.
var cowrie = &spec{
	peerType: "SSH/console(cowrie)",
	srcIP:    "peerIP", srcPort: "peerPort", dstIP: "hostIP", dstPort: "hostPort",
	transport: "tcp", protocol: "ssh", protocolKey: "protocol", timeKey: "startTime",
	extra: cowrieExtra,
}

var dionaeaCapture = &spec{
	peerType: "Network(Dionaea)",
	srcIP:    "saddr", srcPort: "sport", dstIP: "daddr", dstPort: "dport",
	timeKey: "time", extra: dionaeaCaptureExtra,
}

// channels maps every channel of seckc.md §7.2 that carries attack events.
// thug.events, thug.files, glastopf.files and mwbinary.dionaea.sensorunique
// carry files, not sessions (Mnemosyne makes no session of them either), so
// they take the generic rule, which keeps binary data as a payload.
var channels = map[string]*spec{
	"cowrie.sessions": cowrie,
	"kippo.sessions":  cowrie,
	"dionaea.connections": {
		peerType: "Network(Dionaea)",
		srcIP:    "remote_host", srcPort: "remote_port", dstIP: "local_host", dstPort: "local_port",
		transportKey: "connection_transport", protocolKey: "connection_protocol",
	},
	"dionaea.capture":      dionaeaCapture,
	"dionaea.capture.anon": dionaeaCapture,
	"dionaea.captures":     dionaeaCapture,
	"conpot.events": {
		peerType: "Industrial(conpot)",
		srcIP:    "src_ip", srcPort: "src_port", dstIP: "dst_ip", dstPort: "dst_port",
		protocolKey: "data_type", timeKey: "timestamp", extra: conpotExtra,
	},
	"glastopf.events": {
		peerType: "Webpage", fixedDstPort: 80, transport: "tcp", protocol: "http",
		timeKey: "time", extra: glastopfExtra,
	},
	"snort.alerts": {
		peerType: "Network(snort)",
		srcIP:    "source_ip", srcPort: "source_port", dstIP: "destination_ip", dstPort: "destination_port",
		transportKey: "proto", protocolKey: "proto", timeKey: "timestamp",
	},
	"suricata.events": {
		peerType: "Network(suricata)",
		srcIP:    "source_ip", srcPort: "source_port", dstIP: "destination_ip", dstPort: "destination_port",
		transportKey: "proto", protocolKey: "proto", timeKey: "timestamp",
	},
	"p0f.events": {
		peerType: "Network(p0f)",
		srcIP:    "client_ip", srcPort: "client_port", dstIP: "server_ip", dstPort: "server_port",
		transport: "tcp", protocol: "pcap", timeKey: "timestamp",
	},
	"amun.events": {
		peerType: "Network(amun)",
		srcIP:    "attackerIP", srcPort: "attackerPort", dstIP: "victimIP", dstPort: "victimPort",
		transport: "tcp", extra: portProtocolExtra,
	},
	"wordpot.events": {
		peerType: "Webpage(wordpot)",
		srcIP:    "source_ip", srcPort: "source_port", dstIP: "dest_ip", dstPort: "dest_port",
		transport: "tcp", protocol: "http", extra: webExtra,
	},
	"shockpot.events": {
		peerType: "Webpage(shockpot)",
		srcIP:    "source_ip", dstIP: "dest_host", dstPort: "dest_port",
		transport: "tcp", protocol: "http", timeKey: "timestamp", extra: webExtra,
	},
	"elastichoney.events": {
		peerType: "Service(elastichoney)",
		srcIP:    "source", dstIP: "honeypot", fixedDstPort: 9200,
		transport: "tcp", protocol: "http", timeKey: "@timestamp", extra: webExtra,
	},
	"elasticpot.events": {
		peerType: "Service(ES)",
		srcIP:    "src_ip", srcPort: "src_port", dstIP: "dst_ip", dstPort: "dst_port",
		transport: "tcp", protocol: "elasticsearch", timeKey: "timestamp", extra: webExtra,
	},
	"rdphoney.sessions": {
		peerType: "RDP(rdphoney)",
		srcIP:    "peerIP", srcPort: "peerPort", dstIP: "hostIP", dstPort: "hostPort",
		transport: "tcp", protocol: "rdp", extra: credentialsExtra("username", "password"),
	},
	"uhp.events": {
		peerType: "Network(uhp)",
		srcIP:    "src_ip", srcPort: "src_port", dstIP: "dest_ip", dstPort: "dest_port",
		transport: "tcp", timeKey: "timestamp",
	},
	"spylex.events": {
		peerType: "Webpage(spylex)",
		srcIP:    "src_ip", srcPort: "src_port", dstIP: "dst_ip", dstPort: "dst_port",
		transport: "tcp", protocol: "http", timeKey: "timestamp", extra: webExtra,
	},
	"big-hp.events": {
		peerType: "Webpage(big-hp)",
		srcIP:    "src_ip", srcPort: "src_port", dstIP: "dst_ip", dstPort: "dst_port",
		transport: "tcp", protocol: "http", timeKey: "timestamp", extra: webExtra,
	},
	"ssh-auth-logger.events": {
		peerType: "SSH/console(ssh-auth-logger)",
		srcIP:    "src", srcPort: "spt", dstIP: "dst", dstPort: "dpt",
		transport: "tcp", protocol: "ssh", timeKey: "time", extra: sshAuthLoggerExtra,
	},
	"honeydb-agent.events": {
		peerType: "Network(honeydb-agent)",
		srcIP:    "remote_host", srcPort: "remote_port", dstIP: "local_host", dstPort: "local_port",
		protocolKey: "service", timeKey: "timestamp",
	},
	"beeswarm.hive": {
		peerType: "Passwords(beeswarm)",
		srcIP:    "attacker_ip", srcPort: "attacker_source_port", dstIP: "honey_ip", dstPort: "honey_port",
		transport: "tcp", protocolKey: "protocol", timeKey: "timestamp", extra: beeswarmExtra,
	},
	"agave.events": {
		peerType: "Webpage(agave)",
		srcIP:    "SrcIp", srcPort: "SrcPort", dstIP: "DestIp", dstPort: "DestPort",
		transport: "tcp", protocolKey: "Protocol", extra: agaveExtra,
	},
	"drupot.events": {
		peerType: "Webpage(drupot)",
		srcIP:    "SrcIp", srcPort: "SrcPort", dstIP: "DestIp", dstPort: "DestPort",
		transport: "tcp", protocol: "http", protocolKey: "Protocol",
	},
}

// KnownChannels returns the channels with a dedicated normalizer, sorted
// (for documentation and a default subscription list).
func KnownChannels() []string {
	out := make([]string, 0, len(channels))
	for ch := range channels {
		out = append(out, ch)
	}
	sort.Strings(out)
	return out
}

// pair decodes a two-element JSON array of strings/numbers, e.g. cowrie's
// ["user","pass"] or glastopf's ["ip", port].
func pair(raw json.RawMessage) (a, b string, ok bool) {
	var v []json.RawMessage
	if json.Unmarshal(raw, &v) != nil || len(v) < 2 {
		return "", "", false
	}
	return rawString(v[0]), rawString(v[1]), true
}

func setCredentials(e *peba.Event, user, pass, login string) {
	e.Username = bounded(e, "username", user)
	e.Password = bounded(e, "password", pass)
	e.Login = login
}

// cowrieExtra: session times, client version and credentials the way
// ewsposter's cowrie module reports them (ewsposter.md §2.3: login
// Success/Fail, the successful pair or else the last failed one).
func cowrieExtra(o *object, e *peba.Event, _ *string) {
	e.SessionStart = bounded(e, "sessionStart", o.str("startTime"))
	e.SessionEnd = bounded(e, "sessionEnd", o.str("endTime"))
	e.ClientVersion = bounded(e, "clientVersion", o.str("version"))
	if u, p, ok := pair(o.m["loggedin"]); ok {
		setCredentials(e, u, p, "Success")
	} else if creds := o.array("credentials"); len(creds) > 0 {
		if u, p, ok := pair(creds[len(creds)-1]); ok {
			setCredentials(e, u, p, "Fail")
		}
	}
	if urls := o.array("urls"); len(urls) > 0 {
		e.URL = bounded(e, "url", rawString(urls[0]))
	}
}

// wellKnownPorts is Mnemosyne's port_to_service table for dionaea.capture
// and amun (seckc.md §7.2; its "https\"" typo fixed), extended by the
// services those honeypots emulate. Other ports get no protocol: the
// normalizer is pure and cannot ask getservbyport.
var wellKnownPorts = map[int32]string{
	21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 42: "nameserver", 69: "tftp", 80: "http",
	135: "dcom-scm", 443: "https", 445: "microsoft-ds", 1433: "ms-sql-s", 1723: "pptp",
	1883: "mqtt", 3306: "mysql", 5060: "sip", 5061: "sips", 11211: "memcache",
}

func portProtocolExtra(_ *object, e *peba.Event, protocol *string) {
	if *protocol == "" {
		*protocol = wellKnownPorts[e.DstPort]
	}
}

var md5Hex = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// dionaeaCaptureExtra: the malware hash and URL, and the login fields of
// CHN dionaea's other event kinds on this channel.
func dionaeaCaptureExtra(o *object, e *peba.Event, protocol *string) {
	portProtocolExtra(o, e, protocol)
	if m := o.str("md5"); md5Hex.MatchString(m) {
		e.PayloadMD5 = strings.ToLower(m)
		e.AdditionalData = append(e.AdditionalData, peba.Attr{Key: "payload_md5", Value: e.PayloadMD5})
	}
	e.URL = bounded(e, "url", o.str("url"))
	if u := o.str("username"); u != "" {
		setCredentials(e, u, o.str("password"), "")
	}
}

// conpotExtra: older conpot has only remote ["ip", port] (and newer also
// local), and Mnemosyne's destination port is a hard-coded 502; we use the
// real port where the payload has it. public_ip is the sensor's address.
func conpotExtra(o *object, e *peba.Event, _ *string) {
	if !e.SrcIP.IsValid() {
		if ip, port, ok := pair(o.m["remote"]); ok {
			e.SrcIP, e.SrcPort = parseIP(ip), parsePort(port)
		}
	}
	if !e.DstIP.IsValid() {
		if ip, port, ok := pair(o.m["local"]); ok {
			e.DstIP, e.DstPort = parseIP(ip), parsePort(port)
		}
	}
	e.ExternalIP = clip(o.str("public_ip"), 64)
	e.Transport = "tcp"
	if e.DstPort == peba.NoPort {
		e.DstPort = 502
	}
}

// glastopfExtra: source ["ip", port], the request URL and the raw request.
func glastopfExtra(o *object, e *peba.Event, _ *string) {
	if ip, port, ok := pair(o.m["source"]); ok {
		e.SrcIP, e.SrcPort = parseIP(ip), parsePort(port)
	}
	e.URL = bounded(e, "url", o.str("request_url"))
	e.RawHTTP = bounded(e, "rawhttp", o.str("request_raw"))
}

// webExtra: the URL of the web honeypots, and credentials where the
// honeypot records them (wordpot).
func webExtra(o *object, e *peba.Event, _ *string) {
	e.URL = bounded(e, "url", firstOf(o, []string{"url", "path", "uri"}))
	if u := o.str("username"); u != "" {
		setCredentials(e, u, o.str("password"), "")
	}
}

func credentialsExtra(userKey, passKey string) func(*object, *peba.Event, *string) {
	return func(o *object, e *peba.Event, _ *string) {
		if u := o.str(userKey); u != "" {
			setCredentials(e, u, o.str(passKey), "")
		}
	}
}

func sshAuthLoggerExtra(o *object, e *peba.Event, _ *string) {
	e.ClientVersion = bounded(e, "clientVersion", o.str("client_version"))
	if u := o.str("duser"); u != "" {
		setCredentials(e, u, o.str("password"), "")
	}
}

// beeswarmExtra: the last of login_attempts [{username, password}].
func beeswarmExtra(o *object, e *peba.Event, _ *string) {
	if la := o.array("login_attempts"); len(la) > 0 {
		if a, ok := parseObject(la[len(la)-1]); ok {
			setCredentials(e, a.str("username"), a.str("password"), "")
		}
	}
}

// agaveExtra: MHN names the honeypot after AgaveApp.
func agaveExtra(o *object, e *peba.Event, _ *string) {
	if app := o.str("AgaveApp"); app != "" {
		e.PeerType = "Webpage(" + clip(app, 64) + ")"
	}
}
