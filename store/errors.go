package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: no row with that id or key.
	ErrNotFound = errors.New("not found")
	// ErrInvalidOffset: a page offset token that this store did not make.
	ErrInvalidOffset = errors.New("invalid offset")
	// ErrAlreadyBootstrapped: Bootstrap on a database that has migrations.
	ErrAlreadyBootstrapped = errors.New("database already bootstrapped")
	// ErrNotBootstrapped: the database has no schema yet; run bootstrap.
	ErrNotBootstrapped = errors.New("database needs bootstrapping")
	// ErrPendingMigrations: the schema is older than this binary; run up.
	ErrPendingMigrations = errors.New("database has pending migrations")
	// ErrUnavailable: the database cannot be reached (refused, timed out,
	// shutting down); callers answer 503 and retry later.
	ErrUnavailable = errors.New("database unavailable")
)

// Kong's reasons for a malformed offset (kong/db/strategies/postgres).
const (
	OffsetBadBase64 = "bad base64 encoding"
	// OffsetBadJSON also covers JSON that is not the key of a row: Kong
	// would send it to PostgreSQL and answer 500.
	OffsetBadJSON = "bad json encoding"
)

// OffsetError is a page offset token that this store did not make; it
// matches ErrInvalidOffset.
type OffsetError struct {
	Reason string // OffsetBadBase64 or OffsetBadJSON
}

func (e *OffsetError) Error() string { return "invalid offset: " + e.Reason }

// Is makes errors.Is(err, ErrInvalidOffset) hold.
func (e *OffsetError) Is(target error) bool { return target == ErrInvalidOffset }

// UniqueError is a write that would duplicate a unique field, such as a
// service name already in use.
type UniqueError struct {
	Table, Field, Value string
	// Scope and ScopeID name the parent within which Field is unique (a
	// target's upstream and its id); "" when it is unique outright.
	Scope, ScopeID string
	// Doc is the document that was being written; set for a cache_key
	// violation, whose message names every field of the key.
	Doc json.RawMessage
}

func (e *UniqueError) Error() string {
	return fmt.Sprintf("unique violation on %s: %s=%q already exists", e.Table, e.Field, e.Value)
}

// PrimaryKeyError is an Insert whose id already exists.
type PrimaryKeyError struct {
	Table, ID string
}

func (e *PrimaryKeyError) Error() string {
	return fmt.Sprintf("primary key violation on %s: id %s already exists", e.Table, e.ID)
}

// ForeignKeyError is a write pointing at a parent that does not exist: Field
// of Table refers to RefTable row ID.
type ForeignKeyError struct {
	Table, Field, RefTable, ID string
}

func (e *ForeignKeyError) Error() string {
	return fmt.Sprintf("foreign key violation on %s.%s: no %s row with id %s", e.Table, e.Field, e.RefTable, e.ID)
}

// ReferencedError is a delete of a row that rows of table By still refer to.
type ReferencedError struct {
	Table, By string
}

func (e *ReferencedError) Error() string {
	return fmt.Sprintf("%s row is still referenced by %s", e.Table, e.By)
}

// classify marks errors that mean "the database is not reachable" so that
// they match ErrUnavailable; other errors are returned unchanged. A caller
// that gave up (context.Canceled: an Admin API client went away) is not
// an outage, though pgx may report it as a broken connection.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) || !isUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func isUnavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-57P03: shutting down or starting.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" ||
			pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// The server or the network dropped a pooled connection mid-use.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	// A deadline that expired while dialling or waiting for a stuck server;
	// a caller's cancellation (context.Canceled) is not an outage.
	return pgconn.Timeout(err)
}

// pgError returns the PostgreSQL error inside err, if any.
func pgError(err error) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	ok := errors.As(err, &pgErr)
	return pgErr, ok
}
