// Package auth checks the credentials that ewsposter and API clients send
// (peba.md §2.2, §4.1): the shared community credentials, or a registered
// user's token verified against the stored hash.
package auth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters for new hashes: 19 MiB, 2 passes, 1 lane (the OWASP
// password storage baseline). See BenchmarkHashToken for the cost on the
// machine at hand; every parameter is stored in the PHC string, so raising
// them later leaves existing hashes valid.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on parameters read from stored hashes. Stored hashes may come from
// imported user lists; absurd parameters must not make one verification
// allocate gigabytes or run for minutes.
const (
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonTime    = 16
	maxArgonThreads = 16
)

var b64 = base64.RawStdEncoding

// HashToken returns a new verifier for token as a PHC string
// "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>" (unpadded
// standard base64), with a random 16-byte salt. It fails only if the
// system's random source fails.
func HashToken(token string) (string, error) {
	return hashToken(token, argonMemory, argonTime, argonThreads)
}

// hashToken lets tests use cheap parameters.
func hashToken(token string, memory, time uint32, threads uint8) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("cannot read random salt: %w", err)
	}
	key := argon2.IDKey([]byte(token), salt, time, memory, threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memory, time, threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyToken reports whether token matches the stored verifier. It accepts
//   - argon2id PHC strings as written by HashToken (any parameters within
//     sane bounds);
//   - PEBA's legacy hex sha512 (128 hex digits) and md5 (32 hex digits) of
//     the token (peba.md §5.5), in either letter case.
//
// Digests are compared in constant time. Any other or malformed format gives
// false.
func VerifyToken(stored, token string) bool {
	switch {
	case strings.HasPrefix(stored, "$argon2id$"):
		return verifyArgon2id(stored, token)
	case len(stored) == 2*sha512.Size:
		sum := sha512.Sum512([]byte(token))
		return equalHex(stored, sum[:])
	case len(stored) == 2*md5.Size:
		sum := md5.Sum([]byte(token))
		return equalHex(stored, sum[:])
	}
	return false
}

func equalHex(stored string, sum []byte) bool {
	want, err := hex.DecodeString(stored)
	return err == nil && subtle.ConstantTimeCompare(want, sum) == 1
}

func verifyArgon2id(stored, token string) bool {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	f := strings.Split(stored, "$")
	if len(f) != 6 || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return false
	}
	m, t, p, ok := parseArgonParams(f[3])
	if !ok {
		return false
	}
	salt, err := b64.DecodeString(f[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return false
	}
	want, err := b64.DecodeString(f[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(token), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// parseArgonParams parses exactly "m=<n>,t=<n>,p=<n>" within the bounds.
func parseArgonParams(s string) (m, t uint32, p uint8, ok bool) {
	kv := strings.Split(s, ",")
	if len(kv) != 3 {
		return 0, 0, 0, false
	}
	var v [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		num, found := strings.CutPrefix(kv[i], name)
		n, err := strconv.ParseUint(num, 10, 32)
		if !found || err != nil {
			return 0, 0, 0, false
		}
		v[i] = n
	}
	if v[2] < 1 || v[2] > maxArgonThreads || v[1] < 1 || v[1] > maxArgonTime ||
		v[0] < 8*v[2] || v[0] > maxArgonMemory {
		return 0, 0, 0, false
	}
	return uint32(v[0]), uint32(v[1]), uint8(v[2]), true
}
