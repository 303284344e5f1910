package pebadoc

import (
	"reflect"
	"strings"
	"testing"

	"github.com/peba-go/peba"
)

func TestUnmarshalUser(t *testing.T) {
	sha512 := strings.Repeat("ab01", 32)
	md5 := "5f4dcc3b5aa765d61d8327deb882cf99"
	f := func(line string, want peba.User) {
		t.Helper()
		got, err := UnmarshalUser([]byte(line))
		if err != nil {
			t.Errorf("%s: %v", line, err)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", line, got, want)
		}
	}
	// As add-user.py writes it (peba.md §5.5).
	f(`{"_index":"users","_type":"wsUser","_id":"AWJx","_score":1,"_source":{"peerName":"sensor-1","token":"`+sha512+
		`","getOnly":false,"community":true,"email":"ops@example.org"}}`,
		peba.User{Name: "sensor-1", TokenHash: sha512, CommunityOnly: true, Email: "ops@example.org"})
	// As migrate-mongodb-to-es.py writes legacy md5 users.
	f(`{"_id":"x","_source":{"peerName":"old","token":"`+md5+`","getOnly":false,"community":false,"email":"ex@amle.com"}}`,
		peba.User{Name: "old", TokenHash: md5, Email: "ex@amle.com"})
	// Bare _source, text booleans, upper-case hex, missing flags and email.
	f(`{"peerName":"reader","token":"`+strings.ToUpper(md5)+`","getOnly":"true"}`,
		peba.User{Name: "reader", TokenHash: md5, GetOnly: true})
	f(`{"_source":{"peerName":"n","token":"`+md5+`","getOnly":null,"community":null,"email":null}}`,
		peba.User{Name: "n", TokenHash: md5})
}

func TestUnmarshalUserErrors(t *testing.T) {
	md5 := "5f4dcc3b5aa765d61d8327deb882cf99"
	f := func(line, wantMsg string) {
		t.Helper()
		_, err := UnmarshalUser([]byte(line))
		if peba.ErrorCode(err) != peba.EINVALID || !strings.Contains(peba.ErrorMessage(err), wantMsg) {
			t.Errorf("%.80s: err = %v, want EINVALID containing %q", line, err, wantMsg)
		}
	}
	f(`nope`, "invalid JSON")
	f(`{"_source":7}`, "invalid JSON")
	f(`{"_source":{"token":"`+md5+`"}}`, "peerName")
	f(`{"_source":{"peerName":"`+strings.Repeat("n", 257)+`","token":"`+md5+`"}}`, "peerName")
	f(`{"_source":{"peerName":"a"}}`, "token")
	f(`{"_source":{"peerName":"a","token":"plaintext-token"}}`, "token")
	f(`{"_source":{"peerName":"a","token":"`+md5+`0"}}`, "token")
	f(`{"_source":{"peerName":"a","token":"\u0010`+md5[1:]+`"}}`, "token")
	f(`{"_source":{"peerName":"a","token":"$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"}}`, "token")
	f(`{"_source":{"peerName":"a","token":"`+md5+`","getOnly":1}}`, "getOnly is not a boolean")
	f(`{"_source":{"peerName":"a","token":"`+md5+`","community":"no"}}`, "community is not a boolean")
}
