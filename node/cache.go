package node

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/store"
)

// The configuration cache: the last configuration this node applied, kept
// on disk under its prefix so that a node restarted while PostgreSQL is out
// of reach can serve what it served before (Kong's hybrid data planes keep
// such a cache for the same reason). The database stays the source of
// truth: a node serving from its cache reloads everything from the
// database as soon as it answers.
//
// The file is one header line and a JSON body:
//
//	grapevine-config-cache <format version> <sha256 of the body, hex> <body length>\n
//	{"written_at": …, "database": …, "config_hash": …, "peers": […], "tables": {…}}
//
// It is written to a temporary file in the same folder, synced and renamed
// over the old one, so a crash leaves either the old file or the new one.
// A file whose header, length or checksum does not match is refused whole:
// a half-written or edited configuration is never served.

const (
	cacheFileName      = "grapevine.config.cache"
	cacheMagic         = "grapevine-config-cache"
	cacheFormatVersion = 2
	// oldestCacheFormat is the oldest format still read: version 1 keeps
	// no expiry of a key-auth credential (see cachedDoc).
	oldestCacheFormat = 1
	// cacheWriteDelay coalesces a burst of changes into one write.
	cacheWriteDelay = 500 * time.Millisecond
	// maxCacheHeader bounds the header line read before it is checked.
	maxCacheHeader = 256
)

// cacheBody is the JSON part of the cache file.
type cacheBody struct {
	WrittenAt  time.Time              `json:"written_at"`
	Node       string                 `json:"node"`
	Database   string                 `json:"database"` // host:port/name the configuration was read from
	ConfigHash string                 `json:"config_hash"`
	Peers      []string               `json:"peers,omitempty"` // gossip addresses of the cluster's members
	Tables     map[string][]cachedRow `json:"tables"`
	version    int                    // the file's format version
}

// cachedRow is one entity as the store read it.
type cachedRow struct {
	ID  string          `json:"id"`
	Doc json.RawMessage `json:"doc"`
}

// cacheContent is what the applier hands the cache writer: a copy of the
// entity documents it serves, taken on its own goroutine.
type cacheContent struct {
	docs map[entityKey]json.RawMessage
	hash string
}

// encodeCache renders a cache file.
func encodeCache(body cacheBody) ([]byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding the configuration cache: %w", err)
	}
	sum := sha256.Sum256(raw)
	header := fmt.Sprintf("%s %d %s %d\n", cacheMagic, cacheFormatVersion, hex.EncodeToString(sum[:]), len(raw))
	return append([]byte(header), raw...), nil
}

// errCacheRefused marks every reason a cache file is not served.
var errCacheRefused = errors.New("configuration cache refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCacheRefused, fmt.Sprintf(format, args...))
}

// decodeCache checks a cache file's header, length and checksum and
// decodes its body; database is where this node reads its configuration,
// and a cache written from another database is refused as foreign.
func decodeCache(data []byte, database string) (cacheBody, error) {
	line, rest, found := bytes.Cut(data[:min(len(data), maxCacheHeader)], []byte("\n"))
	if !found {
		return cacheBody{}, refuse("no header line: not a Grapevine configuration cache, or truncated")
	}
	rest = data[len(line)+1:]
	fields := strings.Fields(string(line))
	if len(fields) != 4 || fields[0] != cacheMagic {
		return cacheBody{}, refuse("the header is not %q's: not a Grapevine configuration cache", cacheMagic)
	}
	version, err := strconv.Atoi(fields[1])
	if err != nil || version < oldestCacheFormat || version > cacheFormatVersion {
		return cacheBody{}, refuse("format version %s, this node reads versions %d to %d", fields[1], oldestCacheFormat, cacheFormatVersion)
	}
	length, err := strconv.Atoi(fields[3])
	if err != nil || length < 0 {
		return cacheBody{}, refuse("bad body length %q in the header", fields[3])
	}
	if len(rest) != length {
		return cacheBody{}, refuse("truncated or extended: the header says %d bytes of body, the file holds %d", length, len(rest))
	}
	sum := sha256.Sum256(rest)
	if hex.EncodeToString(sum[:]) != fields[2] {
		return cacheBody{}, refuse("corrupt: the body's sha256 does not match the header's")
	}
	var body cacheBody
	if err := json.Unmarshal(rest, &body); err != nil {
		return cacheBody{}, refuse("corrupt body: %v", err)
	}
	if body.Database != database {
		return cacheBody{}, refuse("written from database %q, this node uses %q", body.Database, database)
	}
	body.version = version
	return body, nil
}

// readCache reads and checks the cache file at path.
func readCache(path, database string) (cacheBody, error) {
	f, err := os.Open(path)
	if err != nil {
		return cacheBody{}, fmt.Errorf("%w: %w", errCacheRefused, err)
	}
	defer f.Close()
	data, err := io.ReadAll(bufio.NewReader(f))
	if err != nil {
		return cacheBody{}, refuse("reading %s: %v", path, err)
	}
	return decodeCache(data, database)
}

// writeCacheFile writes data to path atomically: a temporary file in the
// same folder, synced, then renamed over path, then the folder synced so
// the rename itself survives a crash.
func writeCacheFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating prefix %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+cacheFileName+".*")
	if err != nil {
		return fmt.Errorf("writing the configuration cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removes a failed write
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// cacheTables groups a copy of the applier's documents by table, each
// table's rows ordered by id so equal configurations give equal files.
func cacheTables(docs map[entityKey]json.RawMessage) map[string][]cachedRow {
	tables := map[string][]cachedRow{}
	for key, doc := range docs {
		tables[key.Table] = append(tables[key.Table], cachedRow{ID: key.ID, Doc: doc})
	}
	for _, rows := range tables {
		sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	}
	return tables
}

// cacheRows turns a cache body's tables back into store rows, as a full
// load from the database returns them.
func cacheRows(body cacheBody) map[string][]store.Row {
	rows := make(map[string][]store.Row, len(body.Tables))
	for table, list := range body.Tables {
		out := make([]store.Row, len(list))
		for i, r := range list {
			out[i] = cachedRowOf(table, r, body.version)
		}
		rows[table] = out
	}
	return rows
}
