package pebadoc

import (
	"fmt"
	"strings"

	"github.com/peba-go/peba"
)

// maxUserNameLen follows PEBA 2.0's users mapping (keyword, ignore_above
// 256, peba.md §5.5): a longer peerName was not searchable, so it could never
// authenticate.
const maxUserNameLen = 256

// UnmarshalUser reads one document of PEBA's users index (peba.md §5.5), as
// {"_id": ..., "_source": {"peerName", "token", "getOnly", "community",
// "email"}} or the bare _source object: Name is peerName, TokenHash the
// token (PEBA's hex sha512 or, for users migrated from the grails backend,
// md5; lowercased, never rehashed), GetOnly getOnly, CommunityOnly community
// (both false when missing; true/false strings are accepted because ES 6
// dynamic mappings stored them as text), Email email. Created stays zero:
// PEBA did not record it.
//
// Errors are EINVALID *peba.Error values: not a JSON object, missing or
// over-long peerName, a token that is not 32 or 128 hex digits, flags that
// are not booleans.
func UnmarshalUser(line []byte) (peba.User, error) {
	u, err := userFromLine(line)
	if err != nil {
		return peba.User{}, peba.Errorf(peba.EINVALID, "cannot decode user: %v", err)
	}
	return u, nil
}

func userFromLine(line []byte) (peba.User, error) {
	o, err := decodeObject(line)
	if err != nil {
		return peba.User{}, err
	}
	if raw := o.value("_source"); raw != nil {
		if o, err = decodeObject(raw); err != nil {
			return peba.User{}, err
		}
	}
	u := peba.User{
		Name:      o.str("peerName", ""),
		TokenHash: strings.ToLower(o.str("token", "")),
		Email:     o.str("email", ""),
	}
	if u.Name == "" || len(u.Name) > maxUserNameLen {
		return u, fmt.Errorf("peerName must have 1 to %d bytes", maxUserNameLen)
	}
	if !isHex(u.TokenHash, 128) && !isHex(u.TokenHash, 32) {
		return u, fmt.Errorf("token of user %q is not a hex sha512 or md5", u.Name)
	}
	if u.GetOnly, err = o.flag("getOnly"); err != nil {
		return u, err
	}
	if u.CommunityOnly, err = o.flag("community"); err != nil {
		return u, err
	}
	return u, nil
}

func (o object) flag(key string) (bool, error) {
	switch o.str(key, "false") {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%s is not a boolean", key)
}
