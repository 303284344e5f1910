package exportapi

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/peba-go/peba"
)

// The event JSON of /api/v1/events and /api/v1/events/export (docs/api.md,
// "Event JSON"). Keys are fixed: every key of a view is always present,
// with "" for an absent string and null for an absent port, so that a SIEM
// parser sees one shape. Field order is the wire order.
//
// Callers entitled to private data get the full view. Everyone else gets
// the public view: the live feed's anonymous rule (docs/livefeed.md;
// http/livefeed Sanitize) applied to the stored event. It leaves out our
// sensors' identity (hostname, sensor_uuid, external_ip, internal_ip,
// dst_ip, the target's ASN), credentials (username,
// password, login), the submitting user and domain, and the free-form
// parts where sensor addresses hide (raw_http with its Host header,
// additional_data, fields, requests, session times).

// eventTimeFormat has a fixed width: microseconds, UTC, so values sort as
// text.
const eventTimeFormat = "2006-01-02T15:04:05.000000Z"

// publicEvent is the view for callers not entitled to private data.
type publicEvent struct {
	ID            string    `json:"id"`
	Origin        string    `json:"origin"`
	ReceivedTime  string    `json:"received_time"`
	CreateTime    string    `json:"create_time"`
	PeerType      string    `json:"peer_type"`
	PeerIdent     string    `json:"peer_ident"`
	SrcIP         string    `json:"src_ip"`
	SrcPort       *int32    `json:"src_port"`
	DstPort       *int32    `json:"dst_port"`
	Transport     string    `json:"transport"`
	URL           string    `json:"url"`
	VulnID        string    `json:"vuln_id"`
	ClientVersion string    `json:"client_version"`
	PayloadMD5    string    `json:"payload_md5"`
	Src           geoJSON   `json:"src"`
	Dst           publicDst `json:"dst"`
}

// publicDst is the sensor's GeoIP country and coordinates, which the live
// feed, PEBA's public ticker and /sensors/locations show to everyone; its
// ASN, like its address, is left out.
type publicDst struct {
	Country     string  `json:"country"`
	CountryName string  `json:"country_name"`
	Lat         float64 `json:"lat"`
	Lon         float64 `json:"lon"`
}

// fullEvent is the view for callers entitled to private data.
type fullEvent struct {
	ID             string      `json:"id"`
	Domain         string      `json:"domain"`
	Origin         string      `json:"origin"`
	Submitter      string      `json:"submitter"`
	ReceivedTime   string      `json:"received_time"`
	CreateTime     string      `json:"create_time"`
	PeerType       string      `json:"peer_type"`
	PeerIdent      string      `json:"peer_ident"`
	Hostname       string      `json:"hostname"`
	SensorUUID     string      `json:"sensor_uuid"`
	ExternalIP     string      `json:"external_ip"`
	InternalIP     string      `json:"internal_ip"`
	SrcIP          string      `json:"src_ip"`
	SrcPort        *int32      `json:"src_port"`
	DstIP          string      `json:"dst_ip"`
	DstPort        *int32      `json:"dst_port"`
	Transport      string      `json:"transport"`
	URL            string      `json:"url"`
	VulnID         string      `json:"vuln_id"`
	Username       string      `json:"username"`
	Password       string      `json:"password"`
	Login          string      `json:"login"`
	ClientVersion  string      `json:"client_version"`
	SessionStart   string      `json:"session_start"`
	SessionEnd     string      `json:"session_end"`
	RawHTTP        string      `json:"raw_http"`
	PayloadMD5     string      `json:"payload_md5"`
	Src            geoJSON     `json:"src"`
	Dst            geoJSON     `json:"dst"`
	AdditionalData []peba.Attr `json:"additional_data"`
	Fields         []peba.Attr `json:"fields"`
	Requests       []peba.Attr `json:"requests"`
}

type geoJSON struct {
	Country     string  `json:"country"`
	CountryName string  `json:"country_name"`
	ASN         string  `json:"asn"`
	Lat         float64 `json:"lat"`
	Lon         float64 `json:"lon"`
}

// eventJSON encodes e in the view of a caller (full if private).
func eventJSON(e *peba.Event, private bool) json.RawMessage {
	var v any
	if private {
		v = fullEvent{
			ID: e.ID, Domain: e.Domain.String(), Origin: e.Origin, Submitter: e.Submitter,
			ReceivedTime: formatTime(e.ReceivedTime), CreateTime: formatTime(e.CreateTime),
			PeerType: e.PeerType, PeerIdent: e.PeerIdent, Hostname: e.Hostname, SensorUUID: e.SensorUUID,
			ExternalIP: e.ExternalIP, InternalIP: e.InternalIP,
			SrcIP: addr(e.SrcIP), SrcPort: port(e.SrcPort), DstIP: addr(e.DstIP), DstPort: port(e.DstPort),
			Transport: e.Transport, URL: e.URL, VulnID: e.VulnID,
			Username: e.Username, Password: e.Password, Login: e.Login, ClientVersion: e.ClientVersion,
			SessionStart: e.SessionStart, SessionEnd: e.SessionEnd, RawHTTP: e.RawHTTP, PayloadMD5: e.PayloadMD5,
			Src: geo(e.Src), Dst: geo(e.Dst),
			AdditionalData: attrs(e.AdditionalData), Fields: attrs(e.Fields), Requests: attrs(e.Requests),
		}
	} else {
		v = publicEvent{
			ID: e.ID, Origin: e.Origin,
			ReceivedTime: formatTime(e.ReceivedTime), CreateTime: formatTime(e.CreateTime),
			PeerType: e.PeerType, PeerIdent: e.PeerIdent,
			SrcIP: addr(e.SrcIP), SrcPort: port(e.SrcPort), DstPort: port(e.DstPort),
			Transport: e.Transport, URL: e.URL, VulnID: e.VulnID, ClientVersion: e.ClientVersion, PayloadMD5: e.PayloadMD5,
			Src: geo(e.Src), Dst: publicDst{Country: e.Dst.Country, CountryName: e.Dst.CountryName, Lat: e.Dst.Lat, Lon: e.Dst.Lon},
		}
	}
	// Strings, numbers and slices of them: Marshal cannot fail (invalid
	// UTF-8 becomes U+FFFD).
	b, _ := json.Marshal(v)
	return b
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(eventTimeFormat)
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func port(p int32) *int32 {
	if p == peba.NoPort {
		return nil
	}
	return &p
}

func geo(g peba.Geo) geoJSON {
	return geoJSON{Country: g.Country, CountryName: g.CountryName, ASN: g.ASN, Lat: g.Lat, Lon: g.Lon}
}

func attrs(a []peba.Attr) []peba.Attr {
	if a == nil {
		return []peba.Attr{}
	}
	return a
}
