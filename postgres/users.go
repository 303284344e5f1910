package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/internal/storerow"
)

// CreateUser implements peba.Store: ErrConflict if the name exists.
func (s *Store) CreateUser(ctx context.Context, u *peba.User) error {
	if err := storerow.ValidateUser(u); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO users (name, token_hash, email, get_only, community_only, created)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
		escText(u.Name), escText(u.TokenHash), escText(u.Email), u.GetOnly, u.CommunityOnly, dbTime(u.Created))
	if err != nil {
		return fmt.Errorf("cannot create user: %w", err)
	}
	return expectOne(tag, peba.ErrConflict)
}

// UpdateUser implements peba.Store: ErrNotFound if missing. Created is
// not changed.
func (s *Store) UpdateUser(ctx context.Context, u *peba.User) error {
	if err := storerow.ValidateUser(u); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET token_hash = $1, email = $2, get_only = $3, community_only = $4
		WHERE name = $5`, escText(u.TokenHash), escText(u.Email), u.GetOnly, u.CommunityOnly, escText(u.Name))
	if err != nil {
		return fmt.Errorf("cannot update user: %w", err)
	}
	return expectOne(tag, peba.ErrNotFound)
}

// DeleteUser removes a user: ErrNotFound if missing.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	if err := s.check(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE name = $1`, escText(name))
	if err != nil {
		return fmt.Errorf("cannot delete user: %w", err)
	}
	return expectOne(tag, peba.ErrNotFound)
}

// expectOne returns none unless exactly one row was affected.
func expectOne(tag pgconn.CommandTag, none error) error {
	if tag.RowsAffected() != 1 {
		return none
	}
	return nil
}

const userColumns = `name, token_hash, email, get_only, community_only, created`

func scanUser(row pgx.CollectableRow) (peba.User, error) {
	var u peba.User
	err := row.Scan(&u.Name, &u.TokenHash, &u.Email, &u.GetOnly, &u.CommunityOnly, &u.Created)
	u.Name, u.TokenHash, u.Email = unescText(u.Name), unescText(u.TokenHash), unescText(u.Email)
	u.Created = u.Created.UTC()
	return u, err
}

// FindUser implements peba.Store: ErrNotFound if missing.
func (s *Store) FindUser(ctx context.Context, name string) (*peba.User, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users WHERE name = $1", escText(name))
	if err != nil {
		return nil, fmt.Errorf("cannot find user: %w", err)
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, peba.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cannot find user: %w", err)
	}
	return &u, nil
}

// ListUsers implements peba.Store, ordered by name (byte order).
func (s *Store) ListUsers(ctx context.Context) ([]peba.User, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("cannot list users: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
