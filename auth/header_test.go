package auth

import (
	"encoding/base64"
	"testing"

	"github.com/peba-go/peba"
)

func TestParseAuthorization(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct {
		h           string
		want        Credentials
		present, ok bool
	}{
		{"", Credentials{}, false, false},
		{"Bearer alice:s3cr:et", Credentials{"alice", "s3cr:et"}, true, true},
		{"bearer  alice:tok ", Credentials{"alice", "tok"}, true, true},
		{"Basic " + b64("bob:pw"), Credentials{"bob", "pw"}, true, true},
		{"Basic !!!", Credentials{}, true, false},
		{"Bearer alice", Credentials{}, true, false},
		{"Bearer :tok", Credentials{}, true, false},
		{"Bearer alice:", Credentials{}, true, false},
		{"Token alice:tok", Credentials{}, true, false},
		{"Bearer", Credentials{}, true, false},
	} {
		got, present, ok := ParseAuthorization(c.h)
		if got != c.want || present != c.present || ok != c.ok {
			t.Errorf("ParseAuthorization(%q) = %+v, %v, %v; want %+v, %v, %v", c.h, got, present, ok, c.want, c.present, c.ok)
		}
	}
}

func TestMayReadPrivate(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Principal
		want bool
	}{
		{"community credentials", Principal{Domain: peba.DomainCommunity}, false},
		{"registered user", Principal{Domain: peba.DomainPrivate, User: &peba.User{Name: "a"}}, true},
		{"community-only user", Principal{Domain: peba.DomainPrivate, User: &peba.User{Name: "c", CommunityOnly: true}}, false},
	} {
		if got := c.p.MayReadPrivate(); got != c.want {
			t.Errorf("%s: MayReadPrivate = %v, want %v", c.name, got, c.want)
		}
	}
}
