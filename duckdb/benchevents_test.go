package duckdb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/peba-go/peba"
)

// benchLikeEvents returns n events shaped like `peba bench ingest` batches after
// decoding and enrichment (100 per sender batch, one module per batch).
func benchLikeEvents(r *rand.Rand, n, first int, now time.Time) []peba.Event {
	mods := []struct {
		ident, ptype, desc string
		port               int32
	}{
		{"cowrie-community-01", "SSH/console(cowrie)", "SSH Honeypot Cowrie", 22},
		{"dionaea-community-01", "Network(Dionaea)", "Network Honeyport Dionaea v0.1.0", 445},
		{"honeytrap-community-01", "Network(honeytrap)", "NetworkHoneypot Honeytrap v1.1", 80},
		{"heralding-community-01", "Passwords(heralding)", "Heralding Honeypot", 21},
		{"endlessh-community-01", "SSH/console(endlessh)", "Endlessh Honeypot", 22},
	}
	out := make([]peba.Event, n)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for i := range out {
		k := first + i
		m := mods[(k/100)%len(mods)]
		e := &out[i]
		e.ID = fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
		e.Domain = peba.DomainCommunity
		e.Submitter, e.Origin = "community-01-user", "ews"
		e.ReceivedTime = now
		e.CreateTime = base.Add(time.Duration(k/100)*time.Second + time.Duration(k%100)*time.Millisecond)
		e.PeerIdent, e.PeerType = m.ident, m.ptype
		e.SensorUUID = "6f1c2a7e-5b3d-4c8e-9a0f-0e5a4a2e55" + strconv.Itoa(k%8)
		e.Hostname, e.ExternalIP, e.InternalIP = "ews-bench", "81.2.69.142", "10.10.0.5"
		if r.IntN(10) < 3 {
			e.SrcIP = netip.AddrFrom4([4]byte{45, byte(10 + r.IntN(3)), byte(r.IntN(4)), byte(1 + r.IntN(5))})
		} else {
			e.SrcIP = netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		}
		e.SrcPort = int32(1024 + r.IntN(64000))
		e.DstIP, e.DstPort, e.Transport = netip.MustParseAddr("81.2.69.142"), m.port, "tcp"
		e.Fields = []peba.Attr{{Key: "sessionid", Value: strconv.Itoa(k)}, {Key: "hostname", Value: "ews-bench"},
			{Key: "externalIP", Value: "81.2.69.142"}, {Key: "internalIP", Value: "10.10.0.5"}, {Key: "uuid", Value: e.SensorUUID}}
		if m.port == 21 || m.port == 22 {
			e.Username, e.Password, e.Login = "root", "pass"+strconv.Itoa(r.IntN(1000)), "Fail"
		} else {
			e.URL = fmt.Sprintf("Attack on port %d/tcp", m.port)
		}
		e.Requests = []peba.Attr{{Key: "description", Value: m.desc}}
		e.Src, e.Dst = peba.UnknownGeo, peba.UnknownGeo
	}
	return out
}
