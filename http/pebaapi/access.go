package pebaapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/ews"
)

// maxAuthBody bounds the XML body of the authenticated statistics
// endpoints: it only carries credentials.
const maxAuthBody = 64 << 10

// caller is what a request may see.
type caller struct {
	// registered is true for a registered user (not the community
	// credentials): PEBA's private endpoints accept only those (peba.md §2.2).
	registered bool
	// private is true when the caller may read private data: a registered
	// user who is not community-only (B-6).
	private bool
}

// errNoCredentials and errBadCredentials end in 403 (peba.md §2.2).
var (
	errNoCredentials  = errors.New("no credentials")
	errBadCredentials = errors.New("invalid credentials")
)

// authenticate identifies the caller from the Authorization header
// ("Bearer <user>:<token>" or "Basic", the alternative for new clients) or,
// if body is true and there is no header, from PEBA's XML body
// (<root><Authentication><username/><token/></Authentication></root>).
// Without credentials the caller is anonymous (errNoCredentials). Errors
// other than errNoCredentials and errBadCredentials mean the check could not
// be made (store unavailable).
func (a *API) authenticate(r *http.Request, body bool) (caller, error) {
	user, token, err := headerCredentials(r.Header.Get("Authorization"))
	if errors.Is(err, errNoCredentials) && body {
		user, token, err = bodyCredentials(r.Body)
	}
	if err != nil {
		return caller{}, err
	}
	p, err := a.auth.Authenticate(r.Context(), user, token)
	if err != nil {
		if peba.ErrorCode(err) == peba.EUNAUTHORIZED {
			return caller{}, errBadCredentials
		}
		return caller{}, err
	}
	return caller{registered: p.User != nil, private: p.MayReadPrivate()}, nil
}

// headerCredentials reads the Authorization header with the rule every
// read API shares (auth.ParseAuthorization).
func headerCredentials(h string) (user, token string, err error) {
	c, present, ok := auth.ParseAuthorization(h)
	switch {
	case !present:
		return "", "", errNoCredentials
	case !ok:
		return "", "", errBadCredentials
	}
	return c.User, c.Token, nil
}

// bodyCredentials reads PEBA's XML credentials with the ingest decoder's
// rules (ews.DecodeAuth: Authentication a direct child of the root, whose
// name is not checked, peba.md §2.2). An empty body is "no credentials";
// a malformed or oversized one is a failed login (PEBA answered 500).
func bodyCredentials(body io.Reader) (user, token string, err error) {
	b, err := io.ReadAll(io.LimitReader(body, maxAuthBody+1))
	if err != nil || len(b) > maxAuthBody {
		return "", "", errBadCredentials
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", "", errNoCredentials
	}
	user, token, ok, err := ews.DecodeAuth(b)
	if err != nil || !ok {
		return "", "", errBadCredentials
	}
	return user, token, nil
}

// domains turns ci into the data domains to answer from (peba.md §2.3):
// absent, empty or unknown -> community, "0" -> private, "-1" -> both.
// Private data is dropped for callers not entitled to it, so "ci=0"
// without entitlement answers as for a store without private data
// (docs/compatibility.md, "Statistics API").
func domains(ci string, c caller) []peba.Domain {
	var ds []peba.Domain
	switch ci {
	case "0":
		ds = []peba.Domain{peba.DomainPrivate}
	case "-1":
		ds = []peba.Domain{peba.DomainCommunity, peba.DomainPrivate}
	default:
		ds = []peba.Domain{peba.DomainCommunity}
	}
	if c.private {
		return ds
	}
	out := ds[:0]
	for _, d := range ds {
		if d == peba.DomainCommunity {
			out = append(out, d)
		}
	}
	return out
}

func hasPrivate(ds []peba.Domain) bool {
	for _, d := range ds {
		if d == peba.DomainPrivate {
			return true
		}
	}
	return false
}

// domainKey is the part of a cache key that names the domains.
func domainKey(ds []peba.Domain) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String()[:1])
	}
	return b.String()
}
