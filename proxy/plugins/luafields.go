package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/grapevine-gw/grapevine/internal/luasandbox"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// custom_fields_by_lua of the logging plugins (kong/plugins/http-log and
// file-log handler.lua): each value is Lua run in the sandbox for every
// request, and its result set at that (dotted) field of the log record
// (kong.log.set_serialize_value, kong/pdk/log.lua), nil removing it.
//
// Kong runs the code in nginx's log phase, after the answer went out.
// Here the log hook only copies what the PDK reads (luaView) and hands it
// to the Env's Lua workers, which run the code, edit the record and queue
// it: a request never waits for Lua. A chunk that fails or runs past
// luaRunLimit is logged (sampled) and its field left out; the others
// still apply (in Kong an error loses the whole entry).

// luaRunLimit bounds one chunk's run.
const luaRunLimit = 100 * time.Millisecond

// customFields are one plugin's compiled chunks, by field path.
type customFields struct {
	env    *Env
	plugin string // name and id, for the log
	keys   []string
	protos map[string]*lua.FunctionProto
	failed sampled
}

// compileCustomFields compiles each chunk once; nil without any.
func compileCustomFields(env *Env, plugin string, code map[string]string) (*customFields, error) {
	if len(code) == 0 {
		return nil, nil
	}
	cf := &customFields{env: env, plugin: plugin, keys: sortedKeys(code), protos: map[string]*lua.FunctionProto{}}
	for key, src := range code {
		proto, err := luasandbox.Compile(src)
		if err != nil {
			return nil, fmt.Errorf("custom_fields_by_lua %s: %w", key, err)
		}
		cf.protos[key] = proto
	}
	return cf, nil
}

// logEntry hands a record to the queue: at once without custom fields,
// else through a Lua worker. suffix is added to the record (file-log's
// newline).
func (cf *customFields) logEntry(x pdk.Exchange, q *logQueue, suffix string) {
	record, err := serializeLog(x)
	if err != nil {
		return
	}
	if cf == nil {
		q.add(append(record, suffix...))
		return
	}
	v := viewOf(x, true)
	v.record = record
	cf.env.luaWorkers().add(luaJob{fields: cf, view: v, q: q, suffix: suffix})
}

// apply runs the chunks against v and returns the edited record.
func (cf *customFields) apply(s *luaState, v *luaView) (out []byte, keep bool) {
	var record map[string]any
	d := json.NewDecoder(strings.NewReader(string(v.record)))
	d.UseNumber()
	if err := d.Decode(&record); err != nil {
		return v.record, true
	}
	s.newRequest(v)
	s.record, s.plugin = record, cf.plugin
	defer func() { s.view, s.record, s.plugin, s.field = nil, nil, "", "" }()
	keep = true
	for _, key := range cf.keys {
		s.field = key
		result, err := s.Run(cf.protos[key], s.Env(), luaRunLimit)
		var value any
		if err == nil {
			value, err = fromLua(result, map[*lua.LTable]bool{})
		}
		if err == nil {
			err = setSerializeValue(record, key, value)
		}
		if err != nil {
			// A run cut off may leave the state in any shape; a Lua
			// error is unwound by the protected call.
			keep = keep && !errors.Is(err, luasandbox.ErrTimeout)
			cf.report(key, err)
		}
	}
	out, err := json.Marshal(record)
	if err != nil {
		return v.record, keep
	}
	return out, keep
}

func (cf *customFields) report(key string, err error) {
	if ok, dropped := cf.failed.allow(time.Now()); ok {
		cf.env.logger().Error().Str("plugin", cf.plugin).Str("field", key).Err(err).
			Int64("held_back", dropped).Msg("custom_fields_by_lua failed: the field is left out")
	}
}

// setSerializeValue is set_serialize_value's "set": sub-tables made as
// needed along the dotted key, nil removing the field.
func setSerializeValue(record map[string]any, key string, value any) error {
	node := record
	parts := strings.Split(key, ".")
	for _, sub := range parts[:len(parts)-1] {
		switch next := node[sub].(type) {
		case nil:
			m := map[string]any{}
			node[sub] = m
			node = m
		case map[string]any:
			node = next
		default:
			return fmt.Errorf("the key '%s' could not be used as a serialize value: subkey '%s' is not a table", key, sub)
		}
	}
	last := parts[len(parts)-1]
	if value == nil {
		delete(node, last)
	} else {
		node[last] = value
	}
	return nil
}

// luaJob is one record waiting for its custom fields.
type luaJob struct {
	fields *customFields
	view   *luaView
	q      *logQueue
	suffix string
}

// luaWorkers run the Env's custom fields in the background: a bounded
// backlog (the oldest job dropped when full, as the queues do) and one
// worker per CPU, each with its own Lua state.
type luaWorkers struct {
	env  *Env
	ch   chan luaJob
	stop chan struct{}
	wg   sync.WaitGroup
	full sampled
}

// luaBacklog bounds the records waiting for Lua.
const luaBacklog = 10000

func (e *Env) luaWorkers() *luaWorkers {
	e.luaOnce.Do(func() {
		w := &luaWorkers{env: e, ch: make(chan luaJob, luaBacklog), stop: make(chan struct{})}
		n := max(runtime.GOMAXPROCS(0), 1)
		w.wg.Add(n)
		for range n {
			go w.run()
		}
		e.lua = w
	})
	return e.lua
}

// add queues j without waiting; nil workers (the Env closed before any
// started) drop it.
func (w *luaWorkers) add(j luaJob) {
	if w == nil {
		return
	}
	select {
	case w.ch <- j:
		return
	default:
	}
	select {
	case <-w.ch:
	default:
	}
	select {
	case w.ch <- j:
	default:
	}
	if ok, dropped := w.full.allow(time.Now()); ok {
		w.env.logger().Error().Int64("held_back", dropped).
			Msg("custom_fields_by_lua backlog full, dropping the oldest log entries")
	}
}

func (w *luaWorkers) run() {
	defer w.wg.Done()
	var s *luaState
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	for {
		select {
		case j := <-w.ch:
			if s == nil {
				s = newLuaState(w.env)
			}
			out, keep := j.fields.apply(s, j.view)
			if !keep {
				s.Close()
				s = nil
			}
			j.q.add(append(out, j.suffix...))
		case <-w.stop:
			return
		}
	}
}

// close stops the workers; records still waiting are lost.
func (w *luaWorkers) close() {
	close(w.stop)
	w.wg.Wait()
}
