package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/pebadoc"
)

const userUsage = `Usage:
  peba user add NAME [--token T] [--email E] [--get-only] [--community-only]
  peba user list
  peba user remove NAME
  peba user set-token NAME [--token T]
  peba user import FILE     (PEBA users-index export: one {"_id","_source":{peerName,token,...}} per line)
Without --token a random token is generated and printed once.
`

func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return errUsage
	}
	sub := args[0]
	var token, email string
	var getOnly, communityOnly bool
	cfg, fs, err := config.Load("user "+sub, args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&token, "token", "", "token (default: generate one)")
		fs.StringVar(&email, "email", "", "contact email")
		fs.BoolVar(&getOnly, "get-only", false, "user may read but not submit")
		fs.BoolVar(&communityOnly, "community-only", false, "user may read community data only")
	})
	if err != nil {
		return err
	}
	pos := fs.Args()
	need := map[string]int{"add": 1, "list": 0, "remove": 1, "set-token": 1, "import": 1}
	n, known := need[sub]
	if !known || len(pos) != n {
		fmt.Fprint(stderr, userUsage)
		return errUsage
	}
	store, err := openStore(cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()

	switch sub {
	case "add", "set-token":
		name := pos[0]
		if err := validUserName(name); err != nil {
			return err
		}
		generated := token == ""
		if generated {
			token = newToken()
		}
		hash, err := auth.HashToken(token)
		if err != nil {
			return err
		}
		if sub == "add" {
			u := &peba.User{Name: name, TokenHash: hash, Email: email, GetOnly: getOnly, CommunityOnly: communityOnly, Created: time.Now().UTC()}
			if err := store.CreateUser(ctx, u); err != nil {
				return fmt.Errorf("cannot add user %q: %w", name, err)
			}
			fmt.Fprintf(stdout, "added user %s\n", name)
		} else {
			u, err := store.FindUser(ctx, name)
			if err != nil {
				return fmt.Errorf("cannot find user %q: %w", name, err)
			}
			u.TokenHash = hash
			if err := store.UpdateUser(ctx, u); err != nil {
				return fmt.Errorf("cannot update user %q: %w", name, err)
			}
			fmt.Fprintf(stdout, "token of %s replaced (a running server picks it up within its auth cache TTL)\n", name)
		}
		if generated {
			fmt.Fprintf(stdout, "token: %s\n(shown once; only a hash is stored)\n", token)
		}
	case "list":
		users, err := store.ListUsers(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "NAME\tEMAIL\tGET-ONLY\tCOMMUNITY-ONLY\tHASH\tCREATED")
		for _, u := range users {
			fmt.Fprintf(stdout, "%s\t%s\t%t\t%t\t%s\t%s\n", u.Name, u.Email, u.GetOnly, u.CommunityOnly, hashKind(u.TokenHash), u.Created.Format(time.RFC3339))
		}
	case "remove":
		if err := store.DeleteUser(ctx, pos[0]); err != nil {
			return fmt.Errorf("cannot remove user %q: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "removed user %s\n", pos[0])
	case "import":
		r, closeFn, err := openInput(pos[0], stdin)
		if err != nil {
			return err
		}
		defer closeFn()
		added, skipped, err := importUsers(ctx, store, r, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %d users, %d skipped\n", added, skipped)
	}
	return nil
}

func importUsers(ctx context.Context, store peba.Store, r io.Reader, stderr io.Writer) (added, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		u, err := pebadoc.UnmarshalUser(sc.Bytes())
		if err != nil {
			fmt.Fprintf(stderr, "line %d: %v\n", line, err)
			skipped++
			continue
		}
		if hashKind(u.TokenHash) == "unknown" {
			fmt.Fprintf(stderr, "line %d: user %q: token is not a sha512/md5 hex hash, skipped\n", line, u.Name)
			skipped++
			continue
		}
		if u.Created.IsZero() {
			u.Created = time.Now().UTC()
		}
		err = store.CreateUser(ctx, &u)
		if peba.ErrorCode(err) == peba.ECONFLICT {
			fmt.Fprintf(stderr, "line %d: user %q exists, skipped\n", line, u.Name)
			skipped++
			continue
		}
		if err != nil {
			return added, skipped, fmt.Errorf("cannot import user %q: %w", u.Name, err)
		}
		added++
	}
	return added, skipped, sc.Err()
}

func validUserName(name string) error {
	if name == "" || len(name) > 128 || strings.ContainsAny(name, " \t\r\n") {
		return errors.New("user name must be 1-128 characters without white space")
	}
	return nil
}

func hashKind(h string) string {
	switch {
	case strings.HasPrefix(h, "$argon2id$"):
		return "argon2id"
	case len(h) == 128 && isHex(h):
		return "sha512 (PEBA)"
	case len(h) == 32 && isHex(h):
		return "md5 (PEBA legacy)"
	}
	return "unknown"
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

func newToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
