package exportapi

import (
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// params reads query parameters and collects the first error, so handlers
// parse everything and check once. Every error names its parameter.
type params struct {
	q   url.Values
	err error
}

func (p *params) fail(param, msg string) {
	if p.err == nil {
		p.err = invalid(param, msg)
	}
}

// get returns the single value of name ("" if absent). A repeated
// parameter is an error: which one would win is not obvious.
func (p *params) get(name string) string {
	vs := p.q[name]
	if len(vs) > 1 {
		p.fail(name, "given more than once")
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// text returns a free-text parameter, bounded and valid UTF-8.
func (p *params) text(name string) string {
	v := p.get(name)
	if len(v) > maxParamLen {
		p.fail(name, "longer than "+strconv.Itoa(maxParamLen)+" bytes")
		return ""
	}
	if !utf8.ValidString(v) {
		p.fail(name, "not valid UTF-8")
		return ""
	}
	return v
}

// intIn returns an integer parameter in [lo, hi], def if absent.
func (p *params) intIn(name string, def, lo, hi int64) int64 {
	v := p.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		p.fail(name, "must be an integer from "+strconv.FormatInt(lo, 10)+" to "+strconv.FormatInt(hi, 10))
		return def
	}
	return n
}

// boolean returns a true/false parameter (also 1/0, yes/no), def if absent.
func (p *params) boolean(name string, def bool) bool {
	switch strings.ToLower(p.get(name)) {
	case "":
		return def
	case "true", "1", "yes":
		return true
	case "false", "0", "no":
		return false
	}
	p.fail(name, "must be true or false")
	return def
}

// window returns a duration parameter in (0, max]: a Go duration ("15m",
// "2h", "90m") or whole days ("7d"), def if absent.
func (p *params) window(name string, def, max time.Duration) time.Duration {
	v := p.get(name)
	if v == "" {
		return def
	}
	d, ok := parseWindow(v)
	if !ok {
		p.fail(name, `must be a duration such as 15m, 2h, 24h or 7d`)
		return def
	}
	if d <= 0 || d > max {
		p.fail(name, "must be positive and at most "+formatWindow(max))
		return def
	}
	return d
}

func parseWindow(v string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < 0 || n > 100_000 {
			return 0, false
		}
		return time.Duration(n) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// formatWindow writes d as days where it is whole days ("7d"), else as a
// Go duration ("2h0m0s").
func formatWindow(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// instant returns an RFC 3339 time parameter (fractional seconds allowed),
// or the zero time if absent.
func (p *params) instant(name string) time.Time {
	v := p.get(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.fail(name, "must be an RFC 3339 time such as 2026-11-20T14:00:00Z")
		return time.Time{}
	}
	return t.UTC()
}
