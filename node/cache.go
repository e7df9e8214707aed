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
// It is two files, so that a change costs what changed, not the whole
// configuration (a route change beside a million consumers must not
// rewrite them all, issue 16): a base holding a whole configuration, and a
// journal of the changes applied since, one checksummed record per burst
// of changes.
//
// The base is one header line and a body of JSON values, the first the
// base's metadata, then one per entity:
//
//	grapevine-config-cache <format version> <sha256 of the body, hex> <body length>\n
//	{"written_at": …, "node": …, "database": …, "config_hash": …, "peers": […]}\n
//	{"table": "routes", "id": …, "doc": {…}}\n
//	…
//
// It is written (streamed, never rendered whole in memory) to a temporary
// file in the same folder, synced and renamed over the old one, so a crash
// leaves either the old base or the new one. A base whose header, length
// or checksum does not match, or that was written from another database,
// is refused whole: a half-written or edited configuration is never
// served.
//
// The journal, <base>.journal, starts with a header line naming the base
// it continues, by the base's checksum; each record is framed by its
// length and checksum, appended and synced before the next:
//
//	grapevine-config-journal <format version> <sha256 of the base's body>\n
//	<payload length> <sha256 of the payload, hex>\n
//	{"written_at": …, "config_hash": …, "peers": […], "put": [{"table": …, "id": …, "doc": …}], "deleted": [{"table": …, "id": …}]}\n
//
// On load the records are replayed in order onto the base. A record cut
// short at the end of the file (a crash during the append) is dropped with
// a log line: what is served is the configuration of the record before it,
// one the node did serve. A bad record with more after it is corruption,
// and the whole cache is refused. A journal naming another base is what a
// crash between writing a new base and starting its journal leaves: the
// new base already holds everything that journal held, so it is ignored
// (and said so). Once the journal outgrows a quarter of the base, the
// writer merges them into a new base, streaming the old base from disk
// (its checksum checked again) and overlaying the journal's changes it
// keeps in memory, and starts an empty journal.

const (
	cacheFileName = "grapevine.config.cache"
	// cacheJournalSuffix names the journal beside the base.
	cacheJournalSuffix = ".journal"
	cacheMagic         = "grapevine-config-cache"
	journalMagic       = "grapevine-config-journal"
	// cacheFormatVersion 3 is the base and journal. Before it the cache
	// was one JSON document rewritten whole after every change (format 1;
	// format 2 added key-auth credentials' expiry to the documents, see
	// cachedDoc); those are still read, from oldestCacheFormat on
	// (decodeSingleDocument), a format 1 file's keys without expiry.
	cacheFormatVersion = 3
	oldestCacheFormat  = 1
	// cacheWriteDelay coalesces a burst of changes into one write.
	cacheWriteDelay = 500 * time.Millisecond
	// maxCacheHeader bounds the header line read before it is checked.
	maxCacheHeader = 256
	// compactFraction and minCompactBytes: the journal is merged into a
	// new base once it is larger than both base/compactFraction and
	// minCompactBytes (a small configuration is not rewritten for every
	// few changes; its journal replays in no time).
	compactFraction = 4
	minCompactBytes = 1 << 20
)

// cacheMeta is what a base says about the configuration it holds.
type cacheMeta struct {
	WrittenAt  time.Time `json:"written_at"`
	Node       string    `json:"node"`
	Database   string    `json:"database"` // host:port/name the configuration was read from
	ConfigHash string    `json:"config_hash"`
	Peers      []string  `json:"peers,omitempty"` // gossip addresses of the cluster's members
}

// cacheBody is a configuration read back from the cache: the base with
// its journal replayed.
type cacheBody struct {
	cacheMeta
	Tables map[string][]cachedRow
	// notes are what the loader left out without refusing the cache (a
	// torn journal tail, a journal of an older base), to be logged.
	notes   []string
	version int // the base's format version
}

// cachedRow is one entity as the store read it.
type cachedRow struct {
	ID  string          `json:"id"`
	Doc json.RawMessage `json:"doc"`
}

// cacheLine is one entity in a base or a journal record.
type cacheLine struct {
	Table string `json:"table"`
	cachedRow
}

// cacheKey names an entity a journal record deletes.
type cacheKey struct {
	Table string `json:"table"`
	ID    string `json:"id"`
}

// journalRecord is one burst of changes.
type journalRecord struct {
	WrittenAt  time.Time   `json:"written_at"`
	ConfigHash string      `json:"config_hash"`
	Peers      []string    `json:"peers,omitempty"`
	Put        []cacheLine `json:"put,omitempty"`
	Deleted    []cacheKey  `json:"deleted,omitempty"`
}

// cacheContent is what the applier hands the cache writer, taken on its
// own goroutine: every entity (whole, after a full load) or those changed
// since the last hand-off. Documents are never changed once read, so
// sharing them is safe.
type cacheContent struct {
	whole   bool
	put     []cacheLine
	deleted []cacheKey
	hash    string
}

// errCacheRefused marks every reason a cache file is not served.
var errCacheRefused = errors.New("configuration cache refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCacheRefused, fmt.Sprintf(format, args...))
}

// cacheHeader is a base's header line; fixed width, so a streamed base
// can get its header written over a placeholder once the body is known.
func cacheHeader(sum []byte, length int64) []byte {
	return fmt.Appendf(nil, "%s %d %064x %020d\n", cacheMagic, cacheFormatVersion, sum, length)
}

// writeCacheBody writes a base's body to w: the metadata, then each line
// produce emits.
func writeCacheBody(w io.Writer, meta cacheMeta, produce func(emit func(cacheLine) error) error) error {
	buf, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encoding the configuration cache: %w", err)
	}
	if _, err := w.Write(append(buf, '\n')); err != nil {
		return err
	}
	return produce(func(l cacheLine) error {
		buf, err = appendCacheLine(buf[:0], l)
		if err != nil {
			return err
		}
		_, err = w.Write(append(buf, '\n'))
		return err
	})
}

// appendCacheLine appends l's JSON to buf with its document as the
// database returned it: encoding/json would compact it, and the config
// hash is taken over the document's bytes, so a node serving its cache
// would publish another hash than its peers for the same configuration.
func appendCacheLine(buf []byte, l cacheLine) ([]byte, error) {
	doc := l.Doc
	l.Doc = nil
	enc, err := json.Marshal(l)
	if err != nil {
		return buf, fmt.Errorf("encoding %s %s into the configuration cache: %w", l.Table, l.ID, err)
	}
	// The field's name and null cannot appear unescaped inside a string.
	i := bytes.Index(enc, []byte(docNull))
	if i < 0 || len(doc) == 0 {
		return append(buf, enc...), nil
	}
	buf = append(buf, enc[:i+len(docNull)-len("null")]...)
	buf = append(buf, doc...)
	return append(buf, enc[i+len(docNull):]...), nil
}

const docNull = `"doc":null`

// lines emits a slice's lines.
func lines(ls []cacheLine) func(emit func(cacheLine) error) error {
	return func(emit func(cacheLine) error) error {
		for _, l := range ls {
			if err := emit(l); err != nil {
				return err
			}
		}
		return nil
	}
}

// encodeCache renders a whole base in memory (tests and fuzzing; the node
// streams its bases to disk with writeCacheBase).
func encodeCache(body cacheBody) ([]byte, error) {
	var buf bytes.Buffer
	err := writeCacheBody(&buf, body.cacheMeta, func(emit func(cacheLine) error) error {
		for table, rows := range body.Tables {
			for _, r := range rows {
				if err := emit(cacheLine{Table: table, cachedRow: r}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return append(cacheHeader(sum[:], int64(buf.Len())), buf.Bytes()...), nil
}

// cacheBase is what identifies a base.
type cacheBase struct {
	sum     string // sha256 of its body, hex: what its journal names
	size    int64
	version int
}

// countingWriter counts what passes through it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// writeCacheBase streams a base to path, atomically (replaceFile): a
// header placeholder, the body through a buffer and the checksum, then
// the real header over the placeholder. A produce error leaves the old
// base in place.
func writeCacheBase(path string, meta cacheMeta, produce func(emit func(cacheLine) error) error) (cacheBase, error) {
	var base cacheBase
	err := replaceFile(path, func(f *os.File) error {
		if _, err := f.Write(cacheHeader(make([]byte, sha256.Size), 0)); err != nil {
			return err
		}
		h, n := sha256.New(), &countingWriter{}
		bw := bufio.NewWriterSize(io.MultiWriter(f, h, n), 1<<20)
		if err := writeCacheBody(bw, meta, produce); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		sum := h.Sum(nil)
		if _, err := f.WriteAt(cacheHeader(sum, n.n), 0); err != nil {
			return err
		}
		base = cacheBase{sum: hex.EncodeToString(sum), size: n.n}
		return nil
	})
	return base, err
}

// cacheState is a configuration being read back: the base's entities,
// then each journal record's changes.
type cacheState struct {
	meta cacheMeta
	rows map[entityKey]cachedRow
}

// apply replays one journal record: its deletions, then its entities.
func (s *cacheState) apply(rec journalRecord) {
	for _, k := range rec.Deleted {
		delete(s.rows, entityKey{Table: k.Table, ID: k.ID})
	}
	for _, l := range rec.Put {
		s.rows[entityKey{Table: l.Table, ID: l.ID}] = l.cachedRow
	}
	s.meta.WrittenAt, s.meta.ConfigHash, s.meta.Peers = rec.WrittenAt, rec.ConfigHash, rec.Peers
}

// body is the configuration as the applier loads it, read from base.
func (s *cacheState) body(notes []string, base cacheBase) cacheBody {
	tables := map[string][]cachedRow{}
	for k, r := range s.rows {
		tables[k.Table] = append(tables[k.Table], r)
	}
	return cacheBody{cacheMeta: s.meta, Tables: tables, notes: notes, version: base.version}
}

// scanCacheBase reads a base of size bytes from r, checks its header and
// length, and hands each entity to each; the body's checksum is compared
// once it is read whole, so a caller must not use what it was handed
// before scanCacheBase returns nil. It returns the base's metadata and
// checksum. database is where this node reads its configuration: a base
// written from another one is refused as foreign.
func scanCacheBase(r io.Reader, size int64, database string, each func(cacheLine) error) (cacheMeta, cacheBase, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(maxCacheHeader)
	line, _, found := bytes.Cut(head, []byte("\n"))
	if !found {
		return cacheMeta{}, cacheBase{}, refuse("no header line: not a Grapevine configuration cache, or truncated")
	}
	fields := strings.Fields(string(line))
	if len(fields) != 4 || fields[0] != cacheMagic {
		return cacheMeta{}, cacheBase{}, refuse("the header is not %q's: not a Grapevine configuration cache", cacheMagic)
	}
	version, err := strconv.Atoi(fields[1])
	if err != nil || version < oldestCacheFormat || version > cacheFormatVersion {
		return cacheMeta{}, cacheBase{}, refuse("format version %s, this node reads versions %d to %d", fields[1], oldestCacheFormat, cacheFormatVersion)
	}
	length, err := strconv.ParseInt(fields[3], 10, 64)
	if err != nil || length < 0 {
		return cacheMeta{}, cacheBase{}, refuse("bad body length %q in the header", fields[3])
	}
	if held := size - int64(len(line)) - 1; held != length {
		return cacheMeta{}, cacheBase{}, refuse("truncated or extended: the header says %d bytes of body, the file holds %d", length, held)
	}
	_, _ = br.Discard(len(line) + 1)
	h := sha256.New()
	body := io.TeeReader(io.LimitReader(br, length), h)
	decode := decodeCacheBody
	if version < 3 {
		decode = decodeSingleDocument
	}
	meta, decodeErr := decode(body, each)
	// The checksum covers every byte, whatever the decoder made of them.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return cacheMeta{}, cacheBase{}, refuse("reading the body: %v", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != fields[2] {
		return cacheMeta{}, cacheBase{}, refuse("corrupt: the body's sha256 does not match the header's")
	}
	if decodeErr != nil {
		return cacheMeta{}, cacheBase{}, decodeErr
	}
	if meta.Database != database {
		return cacheMeta{}, cacheBase{}, refuse("written from database %q, this node uses %q", meta.Database, database)
	}
	return meta, cacheBase{sum: sum, size: size, version: version}, nil
}

// decodeSingleDocument decodes the body of a cache of format 1 or 2: one
// JSON document, its entities grouped by table.
func decodeSingleDocument(r io.Reader, each func(cacheLine) error) (cacheMeta, error) {
	var doc struct {
		cacheMeta
		Tables map[string][]cachedRow `json:"tables"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return cacheMeta{}, refuse("corrupt body: %v", err)
	}
	for table, rows := range doc.Tables {
		for _, row := range rows {
			if err := each(cacheLine{Table: table, cachedRow: row}); err != nil {
				return cacheMeta{}, err
			}
		}
	}
	return doc.cacheMeta, nil
}

// decodeCacheBody decodes a base's body: its metadata, then its entities.
func decodeCacheBody(r io.Reader, each func(cacheLine) error) (cacheMeta, error) {
	dec := json.NewDecoder(r)
	var meta cacheMeta
	if err := dec.Decode(&meta); err != nil {
		return cacheMeta{}, refuse("corrupt body: %v", err)
	}
	for dec.More() {
		var l cacheLine
		if err := dec.Decode(&l); err != nil {
			return cacheMeta{}, refuse("corrupt body: %v", err)
		}
		if err := each(l); err != nil {
			return cacheMeta{}, err
		}
	}
	return meta, nil
}

// decodeCache checks and decodes a base held in memory.
func decodeCache(data []byte, database string) (cacheBody, error) {
	s, base, err := readCacheBase(bytes.NewReader(data), int64(len(data)), database)
	if err != nil {
		return cacheBody{}, err
	}
	return s.body(nil, base), nil
}

// readCacheBase reads and checks a base of size bytes from r into a
// cacheState, for its journal to be replayed onto.
func readCacheBase(r io.Reader, size int64, database string) (cacheState, cacheBase, error) {
	s := cacheState{rows: map[entityKey]cachedRow{}}
	meta, base, err := scanCacheBase(r, size, database, s.put)
	s.meta = meta
	return s, base, err
}

func (s *cacheState) put(l cacheLine) error {
	s.rows[entityKey{Table: l.Table, ID: l.ID}] = l.cachedRow
	return nil
}

// readCache reads and checks the base at path, then replays its journal.
func readCache(path, database string) (cacheBody, error) {
	f, err := os.Open(path)
	if err != nil {
		return cacheBody{}, fmt.Errorf("%w: %w", errCacheRefused, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return cacheBody{}, refuse("reading %s: %v", path, err)
	}
	s, base, err := readCacheBase(f, fi.Size(), database)
	if err != nil {
		return cacheBody{}, err
	}
	journal, err := os.ReadFile(path + cacheJournalSuffix)
	if errors.Is(err, os.ErrNotExist) || base.version < 3 {
		return s.body(nil, base), nil // a base alone is a whole configuration; formats 1 and 2 had no journal
	}
	if err != nil {
		return cacheBody{}, refuse("reading %s: %v", path+cacheJournalSuffix, err)
	}
	records, notes, err := decodeJournal(journal, base.sum)
	if err != nil {
		return cacheBody{}, err
	}
	for _, rec := range records {
		s.apply(rec)
	}
	return s.body(notes, base), nil
}

// journalHeader is the first line of the journal continuing a base.
func journalHeader(baseSum string) []byte {
	return fmt.Appendf(nil, "%s %d %s\n", journalMagic, cacheFormatVersion, baseSum)
}

// journalFrame renders one record as it is appended; its entities'
// documents as they were read (appendCacheLine).
func journalFrame(rec journalRecord) ([]byte, error) {
	put := rec.Put
	rec.Put = nil
	payload, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding a configuration cache journal record: %w", err)
	}
	if len(put) > 0 {
		payload = append(payload[:len(payload)-1], `,"put":[`...)
		for i, l := range put {
			if i > 0 {
				payload = append(payload, ',')
			}
			if payload, err = appendCacheLine(payload, l); err != nil {
				return nil, err
			}
		}
		payload = append(payload, "]}"...)
	}
	payload = append(payload, '\n')
	sum := sha256.Sum256(payload)
	return append(fmt.Appendf(nil, "%d %x\n", len(payload), sum), payload...), nil
}

// maxFrameHeader bounds a record's header line: a length and a sha256.
const maxFrameHeader = 20 + 1 + 2*sha256.Size + 1

// decodeJournal checks a journal against the base it must continue and
// returns its records in order, with notes on what it left out: a torn
// last record, or every record when the journal continues another base.
func decodeJournal(data []byte, baseSum string) ([]journalRecord, []string, error) {
	line, _, found := bytes.Cut(data[:min(len(data), maxCacheHeader)], []byte("\n"))
	if !found {
		return nil, nil, refuse("the journal has no header line: not a Grapevine configuration cache journal")
	}
	fields := strings.Fields(string(line))
	if len(fields) != 3 || fields[0] != journalMagic {
		return nil, nil, refuse("the journal's header is not %q's: not a Grapevine configuration cache journal", journalMagic)
	}
	if fields[1] != strconv.Itoa(cacheFormatVersion) {
		return nil, nil, refuse("journal format version %s, this node reads version %d", fields[1], cacheFormatVersion)
	}
	if fields[2] != baseSum {
		return nil, []string{"the configuration cache journal continues another base (a compaction cut short): ignored, the base holds its changes"}, nil
	}
	rest := data[len(line)+1:]
	var records []journalRecord
	for len(rest) > 0 {
		rec, n, torn, err := nextRecord(rest)
		if torn {
			note := fmt.Sprintf("dropped a torn configuration cache journal tail: %d bytes after record %d cut short by a crash (%v); serving the configuration before it", len(rest), len(records), err)
			return records, []string{note}, nil
		}
		if err != nil {
			return nil, nil, refuse("corrupt journal record %d (at byte %d): %v", len(records)+1, len(data)-len(rest), err)
		}
		records = append(records, rec)
		rest = rest[n:]
	}
	return records, nil, nil
}

// nextRecord decodes the record at the start of data and its size. A bad
// record is torn when nothing follows it: its header or its payload runs
// to the end of the file. Anything else is corruption.
func nextRecord(data []byte) (rec journalRecord, n int, torn bool, err error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return rec, 0, true, errors.New("no end to its header")
	}
	if nl > maxFrameHeader {
		return rec, 0, false, errors.New("header too long")
	}
	fields := strings.Fields(string(data[:nl]))
	if len(fields) != 2 {
		return rec, 0, false, fmt.Errorf("bad header %q", data[:nl])
	}
	length, err := strconv.Atoi(fields[0])
	if err != nil || length <= 0 {
		return rec, 0, false, fmt.Errorf("bad length %q", fields[0])
	}
	payload := data[nl+1:]
	if length > len(payload) {
		return rec, 0, true, fmt.Errorf("%d of %d bytes", len(payload), length)
	}
	payload = payload[:length]
	end := nl + 1 + length
	sum := sha256.Sum256(payload)
	if hex.EncodeToString(sum[:]) != fields[1] {
		return rec, 0, end == len(data), errors.New("its sha256 does not match its header's")
	}
	if err := json.Unmarshal(payload, &rec); err != nil {
		return rec, 0, false, fmt.Errorf("decoding it: %w", err)
	}
	return rec, end, false, nil
}

// replaceFile writes path atomically: fill writes a temporary file in the
// same folder, which is synced, then renamed over path, then the folder
// synced so the rename itself survives a crash. A fill error leaves the
// old file.
func replaceFile(path string, fill func(*os.File) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating prefix %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the configuration cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removes a failed write
	if err := fill(tmp); err != nil {
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
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// writeCacheFile writes data to path atomically: a new journal's header,
// and whole files in tests.
func writeCacheFile(path string, data []byte) error {
	return replaceFile(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
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
