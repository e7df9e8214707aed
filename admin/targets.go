package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// Kong's own endpoints for targets (kong/api/routes/upstreams.lua), which
// replace the generic nested ones: targets are listed newest first with
// numeric offsets, /targets/all pages them as stored, a target is named
// by its id or its address within its upstream, PUT updates like PATCH,
// and every one of them answers 404 for a target that is not there.
// The health endpoints are in health.go.

// targetsAllPath is the extra path /endpoints lists.
const targetsAllPath = "/upstreams/{upstreams}/targets/all"

// matchTargets serves /upstreams/{u}/targets[/all|/{t}]; nil for any
// other path.
func (s *Server) matchTargets(segs []string) methods {
	upstreams, ok1 := s.kinds.byTable["upstreams"]
	targets, ok2 := s.kinds.byTable["targets"]
	if !ok1 || !ok2 || len(segs) < 3 || len(segs) > 4 || segs[0] != upstreams.name || segs[2] != targets.name {
		return nil
	}
	n := &nesting{parent: upstreams, parentRef: segs[1], field: "upstream"}
	if len(segs) == 3 {
		return methods{
			http.MethodGet:  func(w http.ResponseWriter, r *http.Request) { s.listTargets(w, r, targets, n) },
			http.MethodPost: func(w http.ResponseWriter, r *http.Request) { s.createEntity(w, r, targets, n) },
		}
	}
	if segs[3] == "all" {
		return methods{http.MethodGet: func(w http.ResponseWriter, r *http.Request) { s.listTargetsAll(w, r, targets, n) }}
	}
	ref := segs[3]
	update := func(w http.ResponseWriter, r *http.Request) { s.patchEntity(w, r, targets, ref, n) }
	return methods{
		http.MethodGet:    func(w http.ResponseWriter, r *http.Request) { s.getEntity(w, r, targets, ref, n) },
		http.MethodPut:    update,
		http.MethodPatch:  update,
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { s.deleteTarget(w, r, targets, ref, n) },
	}
}

// deleteTarget answers 404 for a target that is not there, where the
// generic DELETE answers 204.
func (s *Server) deleteTarget(w http.ResponseWriter, r *http.Request, k *kind, ref string, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	row, err := s.lookupNested(ctx, k, ref, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.deleteRow(ctx, w, r, k, row.ID)
}

// parseTargetPage reads a page of an upstream's targets: Kong's size and
// a numeric offset (page_for_upstream's, not the opaque one of lists).
func parseTargetPage(q url.Values) (page store.Page, start int, err error) {
	if page, err = parsePage(q); err != nil {
		return page, 0, err
	}
	if q.Has("offset") {
		if start, err = strconv.Atoi(q.Get("offset")); err != nil || start < 0 {
			return page, 0, entity.InvalidOffset(q.Get("offset"), "bad offset")
		}
	}
	return page, start, nil
}

// listTargets is Kong's page_for_upstream: the upstream's targets newest
// first (by created_at, then id), one page at a numeric offset.
func (s *Server) listTargets(w http.ResponseWriter, r *http.Request, k *kind, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	q := r.URL.Query()
	page, start, err := parseTargetPage(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all, err := s.allTargets(ctx, k, n, page)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	end := min(start+page.Size, len(all))
	rows := make([]store.Row, 0, end-min(start, end))
	for _, t := range all[min(start, end):end] {
		rows = append(rows, t.Row)
	}
	offset := ""
	if end < len(all) {
		offset = strconv.Itoa(end)
	}
	next := "/" + n.parent.name + "/" + n.parentRef + "/" + k.name + "?offset=" + url.QueryEscape(offset)
	writeJSON(w, http.StatusOK, pageBody(rows, offset, next))
}

// allTargets reads every target of the upstream (with the page's tag
// filter), newest first.
func (s *Server) allTargets(ctx context.Context, k *kind, n *nesting, filter store.Page) ([]targetRow, error) {
	parentID, err := s.lookupParent(ctx, n)
	if err != nil {
		return nil, err
	}
	p := store.Page{Size: store.MaxPageSize, Tags: filter.Tags, AnyTag: filter.AnyTag, ForeignField: n.field, ForeignID: parentID}
	var out []targetRow
	for {
		rows, offset, err := s.st.List(ctx, k.table, p)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			out = append(out, newTargetRow(row))
		}
		if offset == "" {
			break
		}
		p.Offset = offset
	}
	slices.SortFunc(out, func(a, b targetRow) int {
		return -cmp.Or(cmp.Compare(a.createdAt, b.createdAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// targetRow is a stored target with its created_at in milliseconds,
// which the store's column holds in whole seconds only.
type targetRow struct {
	store.Row
	createdAt float64
}

func newTargetRow(row store.Row) targetRow {
	var t struct {
		CreatedAt float64 `json:"created_at"`
	}
	_ = json.Unmarshal(row.Doc, &t) // stored documents are valid; 0 sorts first otherwise
	return targetRow{Row: row, createdAt: t.CreatedAt}
}

// listTargetsAll is GET /upstreams/{u}/targets/all: Kong's
// page_for_upstream_raw, the generic page in stored order; next names the
// upstream as the path did.
func (s *Server) listTargetsAll(w http.ResponseWriter, r *http.Request, k *kind, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	q := r.URL.Query()
	page, err := parsePage(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	parentID, err := s.lookupParent(ctx, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page.ForeignField, page.ForeignID = n.field, parentID
	rows, offset, err := s.st.List(ctx, k.table, page)
	if err != nil {
		s.writeError(w, r, listError(err, page))
		return
	}
	next := "/" + n.parent.name + "/" + n.parentRef + "/" + k.name + "/all?offset=" + url.QueryEscape(offset)
	writeJSON(w, http.StatusOK, pageBody(rows, offset, next))
}
