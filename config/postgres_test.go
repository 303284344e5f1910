package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The DSN may carry a password: it reads from PEBA_POSTGRES_DSN_FILE like
// every secret and never appears in the startup dump or an error message.
func TestPostgresDSNIsASecret(t *testing.T) {
	const dsn = "postgres://peba:hunter2@db.example.org/peba?sslmode=verify-full"
	file := filepath.Join(t.TempDir(), "dsn")
	os.WriteFile(file, []byte(dsn+"\n"), 0o600)
	c, err := load(t, nil, map[string]string{"PEBA_POSTGRES_DSN_FILE": file})
	if err != nil {
		t.Fatal(err)
	}
	if c.PostgresDSN != dsn || c.PostgresMaxConns != 8 {
		t.Errorf("DSN %q, max conns %d", c.PostgresDSN, c.PostgresMaxConns)
	}
	if dump := strings.Join(c.Dump(), "\n"); strings.Contains(dump, "hunter2") || !strings.Contains(dump, "POSTGRES_DSN = ********") {
		t.Errorf("dump leaks or lacks the DSN:\n%s", dump)
	}
	c, err = load(t, []string{"-postgres_dsn", "host=db user=peba dbname=peba", "-postgres_maxconns", "16"}, nil)
	if err != nil || c.PostgresDSN != "host=db user=peba dbname=peba" || c.PostgresMaxConns != 16 {
		t.Errorf("key=value DSN by flag: %+v, %v", c, err)
	}
}

func TestPostgresDSNRejectsWhatIsNoDSN(t *testing.T) {
	_, err := load(t, []string{"-postgres_dsn", "mysql://root:hunter2@db/peba"}, nil)
	if err == nil || !strings.Contains(err.Error(), "POSTGRES_DSN") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("want an error naming POSTGRES_DSN without its value, got %v", err)
	}
	if _, err := load(t, []string{"-postgres_maxconns", "1"}, nil); err == nil {
		t.Error("a pool of one connection was accepted")
	}
}
