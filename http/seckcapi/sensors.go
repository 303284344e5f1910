package seckcapi

import (
	"cmp"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/peba-go/peba"
)

// Bounds of /sensors/locations.
const (
	maxSensors = 1000 // sensors per answer
	// sensorScan is how many of the newest events are read for the
	// sensors' addresses and locations; peba.Stats.Sensors groups but
	// returns neither.
	sensorScan = 5000
)

// sensorData replaces CHN's sensor object (seckc.md §3.2). Entitled callers
// get the identifying fields; nobody gets a secret or the publish list.
type sensorData struct {
	Events      int64    `json:"events"`
	Honeypot    string   `json:"honeypot"` // peer types, ", "-joined (CHN: one honeypot name)
	Honeypots   []string `json:"honeypots"`
	Hostname    string   `json:"hostname,omitempty"`
	Identifier  string   `json:"identifier,omitempty"` // peer idents, ", "-joined
	Identifiers []string `json:"identifiers,omitempty"`
	IP          string   `json:"ip,omitempty"`
	LastSeen    string   `json:"last_seen,omitempty"`
	Name        string   `json:"name,omitempty"`
	UUID        string   `json:"uuid,omitempty"`
}

type geoNames struct {
	En string `json:"en"`
}

type geoCountry struct {
	IsoCode string    `json:"iso_code,omitempty"`
	Names   *geoNames `json:"names,omitempty"`
}

type geoLoc struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// sensorLocation is the part of a GeoIP2 City record that a stored peba.Geo
// holds, with SecKC's top-level latitude/longitude copies (§3.2).
type sensorLocation struct {
	Country   *geoCountry `json:"country,omitempty"`
	Latitude  *float64    `json:"latitude,omitempty"`
	Location  *geoLoc     `json:"location,omitempty"`
	Longitude *float64    `json:"longitude,omitempty"`
}

type sensorItem struct {
	Location   *sensorLocation `json:"location"`
	SensorData sensorData      `json:"sensor_data"`
}

// handleSensors is GET /sensors/locations (seckc.md §3.2). Sensors are
// derived from the events received in the last SensorWindow, grouped as
// peba.Stats.Sensors groups them (T-Pot hostname, else target address);
// the location is the target geo of the sensor's newest event. Anonymous
// callers see community sensors without hostname, address, identifiers or
// UUID (SecKC handed every caller CHN's sensor object, secret included);
// entitled callers see both domains and those fields. A sensor whose
// newest event is older than the newest 5000 events, or whose address has
// no geo (private ranges), has location null. Order: most events first.
func (a *API) handleSensors(w http.ResponseWriter, r *http.Request, c caller) error {
	now := a.now()
	win := peba.Window{Domains: c.domains(), Field: peba.Received, From: now.Add(-a.opt.SensorWindow), To: now}
	groups, err := a.opt.Stats.Sensors(r.Context(), win)
	if err != nil {
		return err
	}
	latest, err := a.opt.Stats.Latest(r.Context(), win, netip.Addr{}, sensorScan)
	if err != nil {
		return err
	}
	newest := map[string]*peba.Event{}
	for i := range latest {
		if k := sensorKey(&latest[i]); newest[k] == nil {
			newest[k] = &latest[i]
		}
	}
	slices.SortStableFunc(groups, func(x, y peba.SensorGroup) int { return cmp.Compare(y.Count, x.Count) })
	if len(groups) > maxSensors {
		groups = groups[:maxSensors]
	}
	out := make([]sensorItem, 0, len(groups))
	for _, g := range groups {
		key, name := "a:"+g.TargetIP, g.TargetIP
		if g.Hostname != "" {
			key, name = "h:"+g.Hostname, g.Hostname
		}
		sd := sensorData{Events: g.Count, Honeypot: strings.Join(g.PeerType, ", "), Honeypots: nonNil(g.PeerType)}
		var loc *sensorLocation
		ev := newest[key]
		if ev != nil {
			loc = locationOf(ev.Dst)
		}
		if c.entitled {
			sd.Name, sd.Hostname, sd.IP = name, g.Hostname, g.TargetIP
			sd.Identifier, sd.Identifiers = strings.Join(g.PeerIdent, ", "), g.PeerIdent
			if ev != nil {
				sd.IP = sensorIP(ev)
				sd.UUID = ev.SensorUUID
				sd.LastSeen = isoformat(ev.ReceivedTime)
			}
		}
		out = append(out, sensorItem{Location: loc, SensorData: sd})
	}
	a.writeJSON(w, http.StatusOK, out)
	return nil
}

// sensorIP is the sensor's public address: the external address T-Pot
// reports unless it is PEBA's "1.1.1.1" default (peba.Event), else the
// target address.
func sensorIP(e *peba.Event) string {
	if ip, err := netip.ParseAddr(e.ExternalIP); err == nil && e.ExternalIP != "1.1.1.1" {
		return ip.String()
	}
	return addrString(e.DstIP)
}

// locationOf turns a stored geo into the location object, nil when the
// databases knew nothing (PEBA's "-" defaults) or the address is private
// ("PIR").
func locationOf(g peba.Geo) *sensorLocation {
	known := func(s string) string {
		if s == "-" || g.Country == "PIR" {
			return ""
		}
		return s
	}
	iso, name := known(g.Country), known(g.CountryName)
	hasLoc := (g.Lat != 0 || g.Lon != 0) && g.Country != "PIR"
	if iso == "" && name == "" && !hasLoc {
		return nil
	}
	loc := &sensorLocation{}
	if iso != "" || name != "" {
		loc.Country = &geoCountry{IsoCode: iso}
		if name != "" {
			loc.Country.Names = &geoNames{En: name}
		}
	}
	if hasLoc {
		lat, lon := g.Lat, g.Lon
		loc.Latitude, loc.Longitude = &lat, &lon
		loc.Location = &geoLoc{Latitude: lat, Longitude: lon}
	}
	return loc
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
