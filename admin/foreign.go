package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/grapevine-gw/grapevine/store"
)

// foreignEndpoint is /child/{c}/field, e.g. /routes/{r}/service: the
// entity the child's foreign field points at.
type foreignEndpoint struct {
	child    *kind
	childRef string
	field    string
	parent   *kind
}

// parentID returns the id the child's field holds; "Not found" when the
// child is absent or the field is null.
func (s *Server) parentID(ctx context.Context, fe foreignEndpoint) (string, error) {
	row, err := s.lookup(ctx, fe.child, fe.childRef)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", fe.child.name, fe.childRef, err)
	}
	id := row.Foreign[fe.field]
	if id == "" {
		return "", errNotFound
	}
	return id, nil
}

func (s *Server) getForeign(w http.ResponseWriter, r *http.Request, fe foreignEndpoint) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	row, err := s.foreignRow(ctx, fe)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, row.Doc)
}

func (s *Server) foreignRow(ctx context.Context, fe foreignEndpoint) (store.Row, error) {
	id, err := s.parentID(ctx, fe)
	if err != nil {
		return store.Row{}, err
	}
	row, err := s.st.Get(ctx, fe.parent.table, id)
	if err != nil {
		return store.Row{}, fmt.Errorf("%s %s: %w", fe.parent.name, id, err)
	}
	return row, nil
}

func (s *Server) patchForeign(w http.ResponseWriter, r *http.Request, fe foreignEndpoint) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	row, err := s.foreignRow(ctx, fe)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The parent is patched wherever the child points now; that it still
	// exists is what the locked read checks.
	s.patchRow(ctx, w, r, fe.parent, row.ID, func(store.Row) error { return nil })
}

func (s *Server) putForeign(w http.ResponseWriter, r *http.Request, fe foreignEndpoint) {
	ctx, cancel := s.dbContext(r)
	id, err := s.parentID(ctx, fe)
	cancel()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.putEntity(w, r, fe.parent, id, nil)
}

// deleteForeign: Kong refuses to delete through the reference (405) and
// answers 404 when there is nothing referenced.
func (s *Server) deleteForeign(w http.ResponseWriter, r *http.Request, fe foreignEndpoint) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	_, err := s.parentID(ctx, fe)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, errNotFound) {
		s.writeError(w, r, err)
		return
	}
	if err != nil {
		s.writeError(w, r, errNotFound)
		return
	}
	s.writeError(w, r, errMethodNotAllowed)
}
