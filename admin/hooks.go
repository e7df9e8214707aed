package admin

import (
	"context"
	"net/http"

	"github.com/grapevine-gw/grapevine/store"
)

// kindHooks is what a kind's own Kong code does around the generic
// handlers: Kong's custom DAO (kong/db/dao/<kind>.lua) and custom routes
// (kong/api/routes/<kind>.lua). Every hook is optional; a kind without
// hooks is served by the generic handlers alone.
type kindHooks struct {
	// resolveRef maps a path's reference that is not a UUID to the
	// entity's id before any handler runs (Kong's "before" of a custom
	// route): a certificate named by one of its SNIs. The returned
	// context carries what the other hooks need of the reference.
	resolveRef func(ctx context.Context, s *Server, method, ref string) (context.Context, string, error)
	// afterWrite runs in the write's transaction once the row is written.
	// transient holds the kind's transient fields as given: a PATCH
	// lists only those it sends; a POST or PUT lists every one, nil when
	// absent.
	afterWrite func(ctx context.Context, s *Server, x *store.Tx, row store.Row, transient map[string]any) error
	// beforeDelete runs in the delete's transaction before the row goes;
	// an error refuses the delete.
	beforeDelete func(ctx context.Context, s *Server, x *store.Tx, id string) error
	// render adds to stored documents what Kong answers beside them (a
	// certificate's snis), on the kind's own endpoints.
	render func(ctx context.Context, s *Server, rows []store.Row) error
}

// kindHooksByTable holds the hooks of the kinds that have some, by table
// name; each kind's file adds its own in init.
var kindHooksByTable = map[string]*kindHooks{}

// hooksOf returns k's hooks; never nil.
func hooksOf(k *kind) *kindHooks {
	if h := kindHooksByTable[k.table.Name]; h != nil {
		return h
	}
	return &kindHooks{}
}

// renderRow is the row as k's render hook makes it.
func (s *Server) renderRow(ctx context.Context, k *kind, row store.Row) (store.Row, error) {
	rows := []store.Row{row}
	err := s.renderRows(ctx, k, rows)
	return rows[0], err
}

// renderRows applies k's render hook, if any, to rows in place.
func (s *Server) renderRows(ctx context.Context, k *kind, rows []store.Row) error {
	if h := hooksOf(k); h.render != nil {
		return h.render(ctx, s, rows)
	}
	return nil
}

// resolvingMethods serves /kind/{ref}… where ref is resolved by the
// kind's resolveRef hook: the path is matched again with the id in its
// place once the request's method is known.
func (s *Server) resolvingMethods(k *kind, segs []string) methods {
	plain := s.matchKind(k, segs)
	if plain == nil {
		return nil
	}
	out := make(methods, len(plain))
	for method := range plain {
		out[method] = func(w http.ResponseWriter, r *http.Request) {
			ctx, id, err := hooksOf(k).resolveRef(r.Context(), s, r.Method, segs[1])
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			resolved := append([]string{segs[0], id}, segs[2:]...)
			s.matchKind(k, resolved)[method](w, r.WithContext(ctx))
		}
	}
	return out
}
