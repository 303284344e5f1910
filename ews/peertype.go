package ews

import "strings"

// pebaTypes is PEBA 1.x's peerIdent -> peerType table (peba.md §4.4),
// unchanged and in order: the first pattern that is a case-sensitive
// substring of Analyzer@id wins.
var pebaTypes = [...]struct{ pattern, peerType string }{
	{"WebHoneypot", "Webpage"},
	{"dionaea", "Network(Dionaea)"},
	{".dio", "Network(Dionaea)"},
	{"honeytrap", "Network(honeytrap)"},
	{".ht", "Network(honeytrap)"},
	{"kippo", "SSH/console(cowrie)"},
	{".kip", "SSH/console(cowrie)"},
	{"cowrie", "SSH/console(cowrie)"},
	{".cow", "SSH/console(cowrie)"},
	{"glastopf", "Webpage"},
	{".gt3", "Webpage"},
	{"vnclowpot", "VNC(vnclowpot)"},
	{".vnc", "VNC(vnclowpot)"},
	{"rdpy", "RDP(rdpy)"},
	{".rdp", "RDP(rdpy)"},
	{"mailoney", "E-Mail(mailoney)"},
	{".mail", "E-Mail(mailoney)"},
	{"heralding", "Passwords(heralding)"},
	{".her", "Passwords(heralding)"},
	{"ciscoasa", "Network(cisco-asa)"},
	{"elasticpot", "Service(ES)"},
	{".elk", "Service(ES)"},
	{"suricata", "Network(suricata)"},
	{"tanner", "Webpage"},
	{".tan", "Webpage"},
	{"medpot", "Service(Medicine)"},
	{"emobility", "Service(emobility)"},
	{"conpot", "Industrial(conpot)"},
	{".con", "Industrial(conpot)"},
	{"glutton", "Network(glutton)"},
}

// newTypes covers the ewsposter modules PEBA's table does not know
// (ewsposter.md §2.3), in PEBA's "Category(name)" style. Consulted only when
// pebaTypes has no match. Patterns are full module names, so no pattern is a
// substring of another module's id ("honeypots" vs "honeypy" vs
// "redishoneypot").
var newTypes = [...]struct{ pattern, peerType string }{
	{"adbhoney", "Service(adbhoney)"},
	{"beelzebub", "SSH/console(beelzebub)"},
	{"citrix", "Webpage(citrix)"},
	{"ddospot", "Network(ddospot)"},
	{"dicompot", "Service(dicompot)"},
	{"endlessh", "SSH/console(endlessh)"},
	{"fatt", "Network(fatt)"},
	{"galah", "Webpage(galah)"},
	{"gopot", "Webpage(gopot)"},
	{"h0neytr4p", "Webpage(h0neytr4p)"},
	{"hellpot", "Webpage(hellpot)"},
	{"honeyaml", "Webpage(honeyaml)"},
	{"honeypots", "Network(honeypots)"},
	{"honeypy", "Network(honeypy)"},
	{"honeysap", "Service(honeysap)"},
	{"ipphoney", "Service(ipphoney)"},
	{"log4pot", "Webpage(log4pot)"},
	{"miniprint", "Service(miniprint)"},
	{"redishoneypot", "Service(redishoneypot)"},
	{"sentrypeer", "Service(sentrypeer)"},
	{"wordpot", "Webpage(wordpot)"},
}

// descriptionTypes maps the exact Request type="description" text of every
// ewsposter module (ewsposter.md §2.3) to its peerType. It is the last
// resort, for ids neither table knows (PEBA's fallback was dead code, B-40).
var descriptionTypes = map[string]string{
	"ADBHoney Honeypot":                   "Service(adbhoney)",
	"Beelzebub Honeypot":                  "SSH/console(beelzebub)",
	"Cisco-ASA Honeypot":                  "Network(cisco-asa)",
	"Citrix Honeypot":                     "Webpage(citrix)",
	"Conpot Honeypot":                     "Industrial(conpot)",
	"SSH Honeypot Cowrie":                 "SSH/console(cowrie)",
	"Ddospot Honeypot":                    "Network(ddospot)",
	"Dicompot Honeypot":                   "Service(dicompot)",
	"Network Honeyport Dionaea v0.1.0":    "Network(Dionaea)",
	"ElasticSearch Honeypot : Elasticpot": "Service(ES)",
	"Emobility Honeypot":                  "Service(emobility)",
	"Endlessh Honeypot":                   "SSH/console(endlessh)",
	"FATT Honeypot":                       "Network(fatt)",
	"Galah Honeypot":                      "Webpage(galah)",
	"WebHoneypot : Glastopf v3.1":         "Webpage",
	"Glutton Honeypot":                    "Network(glutton)",
	"Go-Pot Honeypot":                     "Webpage(gopot)",
	"H0neytr4p Honeypot":                  "Webpage(h0neytr4p)",
	"Hellpot Honeypot":                    "Webpage(hellpot)",
	"Heralding Honeypot":                  "Passwords(heralding)",
	"Honeyaml Honeypot":                   "Webpage(honeyaml)",
	"Honeypots Honeypot":                  "Network(honeypots)",
	"Honeypy Honeypot":                    "Network(honeypy)",
	"Honeysap Honeypot":                   "Service(honeysap)",
	"NetworkHoneypot Honeytrap v1.1":      "Network(honeytrap)",
	"IPP Honeypot":                        "Service(ipphoney)",
	"Log4pot Honeypot":                    "Webpage(log4pot)",
	"Mail Honeypot mailoney":              "E-Mail(mailoney)",
	"Medpot Honeypot":                     "Service(Medicine)",
	"Miniprint Honeypot":                  "Service(miniprint)",
	"RDP Honeypot RDPY":                   "RDP(rdpy)",
	"Redis Honeypot":                      "Service(redishoneypot)",
	"Sentrypeer Honeypot":                 "Service(sentrypeer)",
	"Suricata Attack":                     "Network(suricata)",
	"Tanner Honeypot":                     "Webpage",
	"vnc Honeypot vnclowpot":              "VNC(vnclowpot)",
	"Wordpot Honeypot":                    "Webpage(wordpot)",
}

// peerType maps Analyzer@id to PEBA's honeypot type: PEBA's table first
// (peba.md §4.4), then the table of newer ewsposter modules, then the exact
// description text, else "Unclassified".
func peerType(analyzerID, description string) string {
	for _, t := range pebaTypes {
		if strings.Contains(analyzerID, t.pattern) {
			return t.peerType
		}
	}
	for _, t := range newTypes {
		if strings.Contains(analyzerID, t.pattern) {
			return t.peerType
		}
	}
	if t, ok := descriptionTypes[strings.TrimSpace(description)]; ok {
		return t
	}
	return unclassified
}
