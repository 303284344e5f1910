package seckcapi

import (
	"net/http"

	"github.com/peba-go/peba"
)

// handleGeocode is GET /geocode/<ip> (seckc.md §3.6): the City database's
// record for ip as geoip2-python's response.raw gives it (the record as
// stored, plus traits.ip_address and traits.prefix_len), which is what the
// Globe reads (city.names.en, country.names.en, location.latitude/longitude,
// §8). Status codes differ from SecKC where SecKC answered 500: invalid
// address 400, no database 503; unknown and private addresses stay 404.
// The answer does not depend on the caller, but credentials, if sent, are
// still checked (wrap).
func (a *API) handleGeocode(w http.ResponseWriter, r *http.Request, _ caller) error {
	ip, err := parseIP(r.PathValue("ip"))
	if err != nil {
		return err
	}
	if a.opt.Geo == nil {
		return peba.Errorf(peba.EUNAVAILABLE, "GeoIP database unavailable")
	}
	rec, prefix, err := a.opt.Geo.LookupCity(ip)
	switch peba.ErrorCode(err) {
	case "":
	case peba.ENOTFOUND:
		// The address is echoed in canonical form only: it was validated.
		return peba.Errorf(peba.ENOTFOUND, "No geolocation data found for IP: %s", ip)
	case peba.EUNAVAILABLE:
		return peba.Errorf(peba.EUNAVAILABLE, "GeoIP database unavailable")
	default:
		return err
	}
	traits, _ := rec["traits"].(map[string]any)
	if traits == nil {
		traits = map[string]any{}
	}
	traits["ip_address"] = ip.String()
	traits["prefix_len"] = prefix.Bits()
	rec["traits"] = traits
	// A looked-up record changes only with a database reload.
	w.Header().Set("Cache-Control", "public, max-age=3600")
	a.writeJSON(w, http.StatusOK, rec)
	return nil
}
