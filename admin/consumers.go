package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/grapevine-gw/grapevine/store"
)

// listByCustomID is GET /consumers?custom_id=x: the one consumer with that
// custom_id, or none, in a page without a next one; size, offset and tags
// are ignored (kong/api/routes/consumers.lua).
func (s *Server) listByCustomID(ctx context.Context, w http.ResponseWriter, r *http.Request, k *kind, customID string) {
	if customID == "" {
		writeMessage(w, http.StatusBadRequest, "custom_id must be an unempty string")
		return
	}
	body := listPage{Data: []json.RawMessage{}}
	row, err := s.st.GetByUnique(ctx, k.table, "custom_id", customID)
	switch {
	case err == nil:
		body.Data = append(body.Data, row.Doc)
	case !errors.Is(err, store.ErrNotFound):
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}
