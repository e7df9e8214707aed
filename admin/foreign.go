package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
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

// putForeign replaces the entity the child points at; when the child
// points at none, Kong's put_entity_endpoint (kong/api/endpoints.lua)
// upserts the body under a fresh id and links the child to it.
func (s *Server) putForeign(w http.ResponseWriter, r *http.Request, fe foreignEndpoint) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	child, err := s.lookup(ctx, fe.child, fe.childRef)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%s %q: %w", fe.child.name, fe.childRef, err))
		return
	}
	if id := child.Foreign[fe.field]; id != "" {
		s.putEntity(w, r, fe.parent, id, nil)
		return
	}
	s.createAndLink(ctx, w, r, fe, child.ID)
}

// createAndLink writes the new parent and the child's reference to it in
// one transaction: unlike Kong's two writes, a bad body or a child deleted
// meanwhile leaves neither behind.
func (s *Server) createAndLink(ctx context.Context, w http.ResponseWriter, r *http.Request, fe foreignEndpoint, childID string) {
	in, err := readBody(r, fe.parent)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	in["id"] = uuid.NewString()
	stampTimes(fe.parent, in)
	parent, _, err := s.validRow(ctx, fe.parent, in) // a service has no transient fields
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	link := map[string]any{fe.field: map[string]any{"id": parent.ID}}
	changes, err := s.st.InTx(ctx, func(x *store.Tx) error {
		if _, err := x.Insert(ctx, fe.parent.table, parent); err != nil {
			return err
		}
		current, err := x.GetForUpdate(ctx, fe.child.table, childID)
		if err != nil {
			return fmt.Errorf("%s %s: %w", fe.child.name, childID, err)
		}
		linked, _, err := mergeRow(fe.child, current, link)
		if err != nil {
			return err
		}
		_, err = x.Update(ctx, fe.child.table, linked)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, c := range changes {
		s.apply(ctx, c)
	}
	writeJSON(w, http.StatusOK, parent.Doc)
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
