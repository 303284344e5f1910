package auth

import (
	"encoding/base64"
	"strings"
)

// ParseAuthorization reads the credentials of an HTTP Authorization header:
// "Bearer <user>:<token>" (the form every peba API documents) or "Basic"
// with base64 "<user>:<token>" (what generic HTTP clients send). The
// scheme is case-insensitive. present is false for an empty header (an
// anonymous caller); ok is false for a header that is present but not one
// of these forms, which callers must answer as failed credentials, never
// as anonymous.
func ParseAuthorization(h string) (c Credentials, present, ok bool) {
	if h == "" {
		return Credentials{}, false, false
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "bearer":
	case "basic":
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return Credentials{}, true, false
		}
		cred = string(dec)
	default:
		return Credentials{}, true, false
	}
	user, token, found := strings.Cut(strings.TrimSpace(cred), ":")
	if !found || user == "" || token == "" {
		return Credentials{}, true, false
	}
	return Credentials{User: user, Token: token}, true, true
}

// MayReadPrivate reports whether p may read private-domain data: a
// registered user who is not community-only (B-6). The community
// credentials and community-only users read community data only. This is
// the entitlement rule of PEBA's ci parameter, shared by every read API.
func (p Principal) MayReadPrivate() bool {
	return p.User != nil && !p.User.CommunityOnly
}
