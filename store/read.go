package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultPageSize is Kong's page size when the request gives none.
const DefaultPageSize = 100

// MaxPageSize is Kong's largest page size.
const MaxPageSize = 1000

// Page selects one page of a List.
type Page struct {
	Size   int      // 1..MaxPageSize, caller validates; 0 means DefaultPageSize
	Offset string   // opaque token from a previous page, "" = first page
	Tags   []string // filter
	AnyTag bool     // false: row has ALL Tags (Kong "a,b"); true: ANY (Kong "a/b")
	// ForeignField and ForeignID optionally keep only the rows referring to
	// one parent, e.g. "service", "<uuid>" for /services/{s}/routes.
	ForeignField, ForeignID string
}

// List returns one page of t in id order, and the offset of the next page,
// "" if this is the last one. A malformed Offset gives ErrInvalidOffset.
func (s *Store) List(ctx context.Context, t Table, p Page) ([]Row, string, error) {
	if p.ForeignField != "" && !isUUID(p.ForeignID) {
		// No row can refer to a parent whose id is not a uuid.
		if _, ok := t.foreign(p.ForeignField); ok {
			return nil, "", nil
		}
	}
	query, args, err := listQuery(t, p)
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", t.Name, err)
	}
	rows, err := s.query(ctx, t, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", t.Name, err)
	}
	size := pageSize(p)
	if len(rows) <= size {
		return rows, "", nil
	}
	rows = rows[:size]
	return rows, encodeOffset(rows[size-1].ID), nil
}

// All returns the whole table in id order.
func (s *Store) All(ctx context.Context, t Table) ([]Row, error) {
	rows, err := s.query(ctx, t, t.selectAll())
	if err != nil {
		return nil, fmt.Errorf("read all %s: %w", t.Name, err)
	}
	return rows, nil
}

// Get returns the row with id; ErrNotFound if there is none (or id is not a
// uuid, so cannot exist).
func (s *Store) Get(ctx context.Context, t Table, id string) (Row, error) {
	if !isUUID(id) {
		return Row{}, fmt.Errorf("get %s %s: %w", t.Name, id, ErrNotFound)
	}
	return getWhere(ctx, s.pool, t, "id", id)
}

// GetByKey returns the row whose endpoint key (e.g. name) is key;
// ErrNotFound if there is none or t has no key, or a key unique only
// within a parent (see GetByScopedKey).
func (s *Store) GetByKey(ctx context.Context, t Table, key string) (Row, error) {
	if t.KeyField == "" || t.KeyScope != "" || !isText(key) {
		// A key that no text column can hold names no row.
		return Row{}, fmt.Errorf("get %s by key %q: %w", t.Name, key, ErrNotFound)
	}
	return getWhere(ctx, s.pool, t, t.KeyField, key)
}

// GetByScopedKey returns the row whose endpoint key is key among those
// whose KeyScope field refers to parentID (a target of one upstream);
// ErrNotFound if there is none.
func (s *Store) GetByScopedKey(ctx context.Context, t Table, parentID, key string) (Row, error) {
	f, ok := t.foreign(t.KeyScope)
	if !ok || t.KeyField == "" || !isUUID(parentID) || !isText(key) {
		return Row{}, fmt.Errorf("get %s by key %q: %w", t.Name, key, ErrNotFound)
	}
	query := "SELECT " + t.selectList() + " FROM " + t.from() + " WHERE " +
		pgx.Identifier{f.column()}.Sanitize() + " = $1 AND " + pgx.Identifier{t.KeyField}.Sanitize() + " = $2"
	r, err := t.scanRow(s.pool.QueryRow(ctx, query, parentID, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Row{}, fmt.Errorf("get %s %s=%s under %s: %w", t.Name, t.KeyField, key, parentID, ErrNotFound)
	}
	if err != nil {
		return Row{}, fmt.Errorf("get %s %s=%s: %w", t.Name, t.KeyField, key, classify(err))
	}
	return r, nil
}

// GetByUnique returns the row whose unique field (the endpoint key or one
// of Table.Unique) is value; ErrNotFound if there is none.
func (s *Store) GetByUnique(ctx context.Context, t Table, field, value string) (Row, error) {
	if (field != t.KeyField || t.KeyScope != "") && !slices.Contains(t.Unique, field) || !isText(value) {
		return Row{}, fmt.Errorf("get %s by %s %q: %w", t.Name, field, value, ErrNotFound)
	}
	return getWhere(ctx, s.pool, t, field, value)
}

// GetByCacheKey returns the row whose cache_key column (see
// entity.CacheKeyOf) is key; ErrNotFound if there is none or t has no
// such column.
func (s *Store) GetByCacheKey(ctx context.Context, t Table, key string) (Row, error) {
	if !t.CacheKey || !isText(key) {
		return Row{}, fmt.Errorf("get %s by cache key %q: %w", t.Name, key, ErrNotFound)
	}
	return getWhere(ctx, s.pool, t, "cache_key", key)
}

// selectAll reads the whole table in id order.
func (t Table) selectAll() string {
	return "SELECT " + t.selectList() + " FROM " + t.from() + " ORDER BY id"
}

func getWhere(ctx context.Context, q querier, t Table, column, value string) (Row, error) {
	return getWhereSuffix(ctx, q, t, column, value, "")
}

// getWhereSuffix is getWhere with a locking clause such as " FOR UPDATE".
func getWhereSuffix(ctx context.Context, q querier, t Table, column, value, suffix string) (Row, error) {
	query := "SELECT " + t.selectList() + " FROM " + t.from() +
		" WHERE " + pgx.Identifier{column}.Sanitize() + " = $1" + suffix
	r, err := t.scanRow(q.QueryRow(ctx, query, value))
	if errors.Is(err, pgx.ErrNoRows) {
		return Row{}, fmt.Errorf("get %s %s=%s: %w", t.Name, column, value, ErrNotFound)
	}
	if err != nil {
		return Row{}, fmt.Errorf("get %s %s=%s: %w", t.Name, column, value, classify(err))
	}
	return r, nil
}

// query runs a SELECT built on t.selectList and scans every row.
func (s *Store) query(ctx context.Context, t Table, query string, args ...any) ([]Row, error) {
	return queryRows(ctx, s.pool, t, query, args...)
}

// queryRows is query on any querier: the pool or a transaction.
func queryRows(ctx context.Context, q querier, t Table, query string, args ...any) ([]Row, error) {
	return queryScanned(ctx, q, func(row pgx.CollectableRow) (Row, error) { return t.scanRow(row) }, query, args...)
}

// queryScanned is queryRows with scan reading each row.
func queryScanned(ctx context.Context, q querier, scan pgx.RowToFunc[Row], query string, args ...any) ([]Row, error) {
	out, err := appendScanned(ctx, q, []Row{}, scan, query, args...) // empty, not nil, as pgx.CollectRows
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendScanned is queryScanned appending the rows to out. It is
// pgx.AppendRows growing out by doubling: append grows a big slice by a
// quarter at a time, and copying the rows of a full reload (120 bytes
// each) over and over cost as much as scanning them.
func appendScanned(ctx context.Context, q querier, out []Row, scan pgx.RowToFunc[Row], query string, args ...any) ([]Row, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return out, classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return out, classify(err)
		}
		if len(out) == cap(out) {
			out = slices.Grow(out, max(len(out), 1))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return out, classify(err)
	}
	return out, nil
}

func pageSize(p Page) int {
	if p.Size == 0 {
		return DefaultPageSize
	}
	return p.Size
}

// listQuery builds List's SELECT: filters, id order, one row more than the
// page so that we know whether another page follows.
func listQuery(t Table, p Page) (string, []any, error) {
	size := pageSize(p)
	if size < 1 || size > MaxPageSize {
		return "", nil, fmt.Errorf("page size %d out of range 1..%d", size, MaxPageSize)
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if p.Offset != "" {
		after, err := decodeOffset(p.Offset)
		if err != nil {
			return "", nil, err
		}
		add("id > $?", after)
	}
	if len(p.Tags) > 0 {
		op := "@>"
		if p.AnyTag {
			op = "&&"
		}
		add("tags "+op+" $?::text[]", p.Tags)
	}
	if p.ForeignField != "" {
		cond, arg, err := foreignFilter(t, p)
		if err != nil {
			return "", nil, err
		}
		add(cond, arg)
	}
	query := "SELECT " + t.selectList() + " FROM " + t.from()
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return query + " ORDER BY id LIMIT " + strconv.Itoa(size+1), args, nil
}

// foreignFilter keeps the rows referring to p.ForeignID.
func foreignFilter(t Table, p Page) (string, any, error) {
	f, ok := t.foreign(p.ForeignField)
	if !ok {
		return "", nil, fmt.Errorf("%s has no foreign field %q", t.Name, p.ForeignField)
	}
	return pgx.Identifier{f.column()}.Sanitize() + " = $?::uuid", p.ForeignID, nil
}

// encodeOffset makes Kong's offset token for the last row's id.
func encodeOffset(id string) string { return EncodeOffsetKey(id) }

// decodeOffset returns the id to continue after.
func decodeOffset(token string) (string, error) {
	key, err := DecodeOffsetKey(token)
	if err != nil {
		return "", err
	}
	if len(key) != 1 || !isUUID(key[0]) {
		return "", &OffsetError{Reason: OffsetBadJSON}
	}
	return key[0], nil
}

// EncodeOffsetKey makes Kong's offset token: base64url of a JSON array
// holding the key of the last row served.
func EncodeOffsetKey(key ...string) string {
	b, _ := json.Marshal(key)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeOffsetKey accepts Kong's tokens in either base64 alphabet, padded
// or not, and returns the key they hold; a malformed token gives an
// *OffsetError (matching ErrInvalidOffset).
func DecodeOffsetKey(token string) ([]string, error) {
	raw := strings.TrimRight(token, "=")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(raw)
	}
	if err != nil {
		return nil, &OffsetError{Reason: OffsetBadBase64}
	}
	var key []string
	if err := json.Unmarshal(b, &key); err != nil {
		return nil, &OffsetError{Reason: OffsetBadJSON}
	}
	return key, nil
}

// Referring returns every row of t whose foreign field points at
// parentID, in id order (a certificate's SNIs).
func (s *Store) Referring(ctx context.Context, t Table, field, parentID string) ([]Row, error) {
	return referring(ctx, s.pool, t, field, parentID)
}

// Referring is Store.Referring within the transaction.
func (x *Tx) Referring(ctx context.Context, t Table, field, parentID string) ([]Row, error) {
	return referring(ctx, x.tx, t, field, parentID)
}

func referring(ctx context.Context, q querier, t Table, field, parentID string) ([]Row, error) {
	f, ok := t.foreign(field)
	if !ok {
		return nil, fmt.Errorf("%s has no foreign field %q", t.Name, field)
	}
	if !isUUID(parentID) {
		return nil, nil
	}
	query := "SELECT " + t.selectList() + " FROM " + t.from() +
		" WHERE " + pgx.Identifier{f.column()}.Sanitize() + " = $1 ORDER BY id"
	rows, err := queryRows(ctx, q, t, query, parentID)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", t.Name, parentID, err)
	}
	return rows, nil
}

// FirstWithElement returns the id of a row of t whose document's array
// field holds the string value, "" if none (services trusting a CA
// certificate through ca_certificates).
func (x *Tx) FirstWithElement(ctx context.Context, t Table, field, value string) (string, error) {
	query := "SELECT id::text FROM " + t.from() + " WHERE doc->$1 ? $2 ORDER BY id LIMIT 1"
	var id string
	err := x.tx.QueryRow(ctx, query, field, value).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find %s with %s holding %s: %w", t.Name, field, value, classify(err))
	}
	return id, nil
}

// GetByKey is Store.GetByKey within the transaction.
func (x *Tx) GetByKey(ctx context.Context, t Table, key string) (Row, error) {
	if t.KeyField == "" || !isText(key) {
		return Row{}, fmt.Errorf("get %s by key %q: %w", t.Name, key, ErrNotFound)
	}
	return getWhere(ctx, x.tx, t, t.KeyField, key)
}
