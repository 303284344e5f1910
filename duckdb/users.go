package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// User writes go through the writer connection like every other write, so
// they never meet an append in a DuckDB write-write conflict.

// CreateUser implements peba.Store: ErrConflict if the name exists.
func (s *Store) CreateUser(ctx context.Context, u *peba.User) error {
	if err := storerow.ValidateUser(u); err != nil {
		return err
	}
	if err := s.lockWriter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	res, err := s.wconn.ExecContext(ctx, `INSERT INTO users (name, token_hash, email, get_only, community_only, created)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		u.Name, u.TokenHash, u.Email, u.GetOnly, u.CommunityOnly, dbTime(u.Created))
	if err != nil {
		return fmt.Errorf("cannot create user: %w", err)
	}
	return expectOne(res, peba.ErrConflict)
}

// UpdateUser implements peba.Store: ErrNotFound if missing. Created is
// not changed.
func (s *Store) UpdateUser(ctx context.Context, u *peba.User) error {
	if err := storerow.ValidateUser(u); err != nil {
		return err
	}
	if err := s.lockWriter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	res, err := s.wconn.ExecContext(ctx, `UPDATE users SET token_hash = ?, email = ?, get_only = ?, community_only = ?
		WHERE name = ?`, u.TokenHash, u.Email, u.GetOnly, u.CommunityOnly, u.Name)
	if err != nil {
		return fmt.Errorf("cannot update user: %w", err)
	}
	return expectOne(res, peba.ErrNotFound)
}

// DeleteUser removes a user: ErrNotFound if missing.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	if err := s.lockWriter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	res, err := s.wconn.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("cannot delete user: %w", err)
	}
	return expectOne(res, peba.ErrNotFound)
}

// expectOne returns none unless exactly one row was affected.
func expectOne(res sql.Result, none error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("cannot count affected rows: %w", err)
	}
	if n != 1 {
		return none
	}
	return nil
}

const userColumns = `name, token_hash, email, get_only, community_only, created`

func scanUser(sc interface{ Scan(...any) error }) (peba.User, error) {
	var u peba.User
	err := sc.Scan(&u.Name, &u.TokenHash, &u.Email, &u.GetOnly, &u.CommunityOnly, &u.Created)
	u.Created = u.Created.UTC()
	return u, err
}

// FindUser implements peba.Store: ErrNotFound if missing.
func (s *Store) FindUser(ctx context.Context, name string) (*peba.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, peba.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cannot find user: %w", err)
	}
	return &u, nil
}

// ListUsers implements peba.Store, ordered by name.
func (s *Store) ListUsers(ctx context.Context) ([]peba.User, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	defer rows.Close()
	var out []peba.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	return out, nil
}
