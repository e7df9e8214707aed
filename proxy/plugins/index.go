package plugins

import (
	"crypto"
	"slices"
	"sync"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// Index finds consumers and credentials by what a request carries: a
// key-auth key, a basic-auth or hmac-auth username, a jwt key, and a
// consumer's acl groups. It is kept apart from the routing snapshot so a
// million consumers cost a route change nothing: the node applies each
// consumer and credential change here (Put, Remove) from the same hints
// and polling that carry every other change, and replaces the whole index
// after a full reload (Replace). Safe for any number of readers and one
// writer at a time.
type Index struct {
	mu sync.RWMutex // guards the maps below
	ix indexMaps
}

type indexMaps struct {
	consumers  map[string]*pdk.Consumer // by id; replaced, never changed, once published
	byUsername map[string]string        // consumer username → id
	byCustomID map[string]string        // consumer custom_id → id
	keys       map[string]*KeyCredential
	basic      map[string]*BasicCredential
	hmac       map[string]*SecretCredential
	jwt        map[string]*JWTCredential
	groups     map[string]map[string]string // consumer id → acl id → group
	byID       map[string]credRef           // credential id → where it is filed
	// expiring holds the credentials written with a ttl, id → expiry in
	// unix nanoseconds, so ForgetExpired looks at them alone.
	expiring map[string]int64
}

// credRef is where a credential is filed, to unfile it when it changes.
type credRef struct {
	table, key string
	consumerID string
}

// KeyCredential is a key-auth key.
type KeyCredential struct {
	pdk.Credential
	// expires is when a key written with Kong's ttl stops working, in
	// unix nanoseconds; 0 = never. Key checks it, so an expired key is
	// refused at once, whether or not any event or sweep has come.
	expires int64
}

// Expiring is a decoded entity with the time it expires (a key-auth
// credential written with Kong's ttl); Put and Replace take it in place
// of the entity.
type Expiring struct {
	Value   any
	Expires time.Time
}

// BasicCredential is a basic-auth username and its password hash.
type BasicCredential struct {
	pdk.Credential
	PasswordHash string
}

// SecretCredential is an hmac-auth username and its secret.
type SecretCredential struct {
	pdk.Credential
	Secret string
}

// JWTCredential is a jwt key with its algorithm and secret or public key.
type JWTCredential struct {
	pdk.Credential
	Key          string
	Algorithm    string
	Secret       string
	RSAPublicKey string

	// The public key is parsed on first use, not when the index is
	// loaded: a million credentials would otherwise cost a full load
	// seconds of key parsing.
	parseOnce sync.Once
	parsed    crypto.PublicKey
	parseErr  error
}

// publicKey is RSAPublicKey parsed.
func (c *JWTCredential) publicKey() (crypto.PublicKey, error) {
	c.parseOnce.Do(func() { c.parsed, c.parseErr = parsePublicKey(c.RSAPublicKey) })
	return c.parsed, c.parseErr
}

// IndexTables are the tables whose rows the Index holds.
var IndexTables = []string{"consumers", "keyauth_credentials", "basicauth_credentials",
	"hmacauth_credentials", "jwt_secrets", "acls"}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{ix: newIndexMaps()} }

func newIndexMaps() indexMaps {
	return indexMaps{
		consumers: map[string]*pdk.Consumer{}, byUsername: map[string]string{}, byCustomID: map[string]string{},
		keys: map[string]*KeyCredential{}, basic: map[string]*BasicCredential{},
		hmac: map[string]*SecretCredential{}, jwt: map[string]*JWTCredential{},
		groups: map[string]map[string]string{}, byID: map[string]credRef{},
		expiring: map[string]int64{},
	}
}

// Replace swaps in the entities of a full load (decoded rows of
// IndexTables, in any order); readers see the old index or the new one.
func (ix *Index) Replace(values []any) {
	fresh := newIndexMaps()
	for _, v := range values {
		fresh.put(v)
	}
	ix.mu.Lock()
	ix.ix = fresh
	ix.mu.Unlock()
}

// Put files one new or changed entity of IndexTables (a decoded row).
func (ix *Index) Put(v any) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.ix.put(v)
}

// Remove unfiles an entity of table that no longer exists.
func (ix *Index) Remove(table, id string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if table == "consumers" {
		ix.ix.removeConsumer(id)
		return
	}
	ix.ix.unfile(id)
}

// ForgetExpired unfiles the credentials whose ttl has passed at now and
// returns how many; lookups already refuse them, this frees their memory
// (the database's cleanup deletes their rows without an event).
func (ix *Index) ForgetExpired(now time.Time) int {
	at := now.UnixNano()
	ix.mu.RLock()
	due := 0
	for _, exp := range ix.ix.expiring {
		if exp <= at {
			due++
		}
	}
	ix.mu.RUnlock()
	if due == 0 {
		return 0
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := 0
	for id, exp := range ix.ix.expiring {
		if exp <= at {
			ix.ix.unfile(id)
			n++
		}
	}
	return n
}

// Len is how many consumers and credentials the index holds.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.ix.consumers) + len(ix.ix.byID)
}

// Consumer finds a consumer by id.
func (ix *Index) Consumer(id string) *pdk.Consumer {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.ix.consumers[id]
}

// ConsumerByIDOrUsername finds a consumer by id, or else by username, as
// Kong finds an anonymous consumer (kong.client.load_consumer).
func (ix *Index) ConsumerByIDOrUsername(s string) *pdk.Consumer {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if c := ix.ix.consumers[s]; c != nil {
		return c
	}
	return ix.ix.consumers[ix.ix.byUsername[s]]
}

// Key finds a key-auth credential and its consumer; nil when either is
// missing.
func (ix *Index) Key(key []byte) (*KeyCredential, *pdk.Consumer) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	cred := ix.ix.keys[string(key)]
	if cred == nil || cred.expires != 0 && time.Now().UnixNano() >= cred.expires {
		return nil, nil
	}
	return cred, ix.ix.consumers[cred.ConsumerID]
}

// Basic finds a basic-auth credential and its consumer by username.
func (ix *Index) Basic(username string) (*BasicCredential, *pdk.Consumer) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	cred := ix.ix.basic[username]
	if cred == nil {
		return nil, nil
	}
	return cred, ix.ix.consumers[cred.ConsumerID]
}

// HMAC finds an hmac-auth credential and its consumer by username.
func (ix *Index) HMAC(username string) (*SecretCredential, *pdk.Consumer) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	cred := ix.ix.hmac[username]
	if cred == nil {
		return nil, nil
	}
	return cred, ix.ix.consumers[cred.ConsumerID]
}

// JWT finds a jwt credential and its consumer by key.
func (ix *Index) JWT(key string) (*JWTCredential, *pdk.Consumer) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	cred := ix.ix.jwt[key]
	if cred == nil {
		return nil, nil
	}
	return cred, ix.ix.consumers[cred.ConsumerID]
}

func (m *indexMaps) put(v any) {
	switch e := v.(type) {
	case entity.Consumer:
		m.putConsumer(e)
	case Expiring:
		m.putExpiring(e)
	case entity.KeyAuthCredential:
		m.file(e.Credential, "keyauth_credentials", e.Key)
		m.keys[e.Key] = &KeyCredential{Credential: credential(e.Credential)}
	case entity.BasicAuthCredential:
		m.file(e.Credential, "basicauth_credentials", e.Username)
		m.basic[e.Username] = &BasicCredential{credential(e.Credential), e.Password}
	case entity.HMACAuthCredential:
		m.file(e.Credential, "hmacauth_credentials", e.Username)
		m.hmac[e.Username] = &SecretCredential{credential(e.Credential), deref(e.Secret)}
	case entity.JWTSecret:
		m.file(e.Credential, "jwt_secrets", e.Key)
		m.jwt[e.Key] = &JWTCredential{Credential: credential(e.Credential), Key: e.Key, Algorithm: e.Algorithm,
			Secret: deref(e.Secret), RSAPublicKey: deref(e.RSAPublicKey)}
	case entity.ACL:
		m.file(e.Credential, "acls", e.Group)
		c := credential(e.Credential)
		if m.groups[c.ConsumerID] == nil {
			m.groups[c.ConsumerID] = map[string]string{}
		}
		m.groups[c.ConsumerID][e.ID] = e.Group
		m.refreshGroups(c.ConsumerID)
	}
}

// putExpiring files an entity that expires; only key-auth credentials
// have a ttl in Kong 3.9 (of the kinds the index holds).
func (m *indexMaps) putExpiring(e Expiring) {
	m.put(e.Value)
	k, ok := e.Value.(entity.KeyAuthCredential)
	if !ok {
		return
	}
	at := e.Expires.UnixNano()
	m.keys[k.Key].expires = at
	m.expiring[k.ID] = at
}

func credential(c entity.Credential) pdk.Credential {
	out := pdk.Credential{ID: c.ID}
	if c.Consumer != nil {
		out.ConsumerID = c.Consumer.ID
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (m *indexMaps) putConsumer(e entity.Consumer) {
	if old := m.consumers[e.ID]; old != nil {
		delete(m.byUsername, old.Username)
		delete(m.byCustomID, old.CustomID)
	}
	c := &pdk.Consumer{ID: e.ID, Username: deref(e.Username), CustomID: deref(e.CustomID)}
	if c.Username != "" {
		m.byUsername[c.Username] = c.ID
	}
	if c.CustomID != "" {
		m.byCustomID[c.CustomID] = c.ID
	}
	c.Groups = sortedGroups(m.groups[c.ID])
	m.consumers[c.ID] = c
}

// removeConsumer forgets a consumer; its credentials go with their own
// deletions (a consumer's delete cascades, one event per credential).
func (m *indexMaps) removeConsumer(id string) {
	if old := m.consumers[id]; old != nil {
		delete(m.byUsername, old.Username)
		delete(m.byCustomID, old.CustomID)
		delete(m.consumers, id)
	}
}

// file records where a credential is filed, unfiling its old version.
func (m *indexMaps) file(c entity.Credential, table, key string) {
	m.unfile(c.ID)
	ref := credRef{table: table, key: key}
	if c.Consumer != nil {
		ref.consumerID = c.Consumer.ID
	}
	m.byID[c.ID] = ref
}

func (m *indexMaps) unfile(id string) {
	ref, ok := m.byID[id]
	if !ok {
		return
	}
	delete(m.byID, id)
	delete(m.expiring, id)
	switch ref.table {
	case "keyauth_credentials":
		if c := m.keys[ref.key]; c != nil && c.ID == id {
			delete(m.keys, ref.key)
		}
	case "basicauth_credentials":
		if c := m.basic[ref.key]; c != nil && c.ID == id {
			delete(m.basic, ref.key)
		}
	case "hmacauth_credentials":
		if c := m.hmac[ref.key]; c != nil && c.ID == id {
			delete(m.hmac, ref.key)
		}
	case "jwt_secrets":
		if c := m.jwt[ref.key]; c != nil && c.ID == id {
			delete(m.jwt, ref.key)
		}
	case "acls":
		delete(m.groups[ref.consumerID], id)
		if len(m.groups[ref.consumerID]) == 0 {
			delete(m.groups, ref.consumerID)
		}
		m.refreshGroups(ref.consumerID)
	}
}

// refreshGroups republishes a consumer with its current groups: a new
// value, since readers may hold the old one.
func (m *indexMaps) refreshGroups(consumerID string) {
	old := m.consumers[consumerID]
	if old == nil {
		return
	}
	c := *old
	c.Groups = sortedGroups(m.groups[consumerID])
	m.consumers[consumerID] = &c
}

func sortedGroups(byID map[string]string) []string {
	if len(byID) == 0 {
		return nil
	}
	out := make([]string, 0, len(byID))
	for _, g := range byID {
		out = append(out, g)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
