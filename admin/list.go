package admin

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// maxQueryTags is Kong's limit on tags in one filter.
const maxQueryTags = 5

// Kong's tag filter errors: options that validate_options_value
// (kong/db/dao/init.lua) refuses, code 11.
var (
	errFilterSyntax = entity.InvalidOptions("tags", "invalid filter syntax")
	errFilterEmpty  = entity.InvalidOptions("tags", "cannot be null")
)

// listPage is Kong's collection body; offset appears only when more rows exist.
type listPage struct {
	Data   []json.RawMessage `json:"data"`
	Next   *string           `json:"next"`
	Offset string            `json:"offset,omitempty"`
}

// listEntities is Kong's get_collection_endpoint (kong/api/endpoints.lua):
// under a nested path the parent is looked up first (404 before any
// argument error), then size, offset and tags are read.
func (s *Server) listEntities(w http.ResponseWriter, r *http.Request, k *kind, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	parentID, err := s.lookupParent(ctx, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	if k.table.Name == "consumers" && n == nil && q.Has("custom_id") {
		s.listByCustomID(ctx, w, r, k, q.Get("custom_id"))
		return
	}
	page, err := parsePage(q)
	if err == nil {
		page.Tags, page.AnyTag, err = parseTagFilter(q)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	base := "/" + k.name
	if n != nil {
		// Kong checks the filter of a nested list but does not apply it:
		// its page_for_<parent> query has no tags condition
		// (kong/db/strategies/postgres/init.lua page).
		page.Tags, page.AnyTag = nil, false
		page.ForeignField, page.ForeignID = n.field, parentID
		base = "/" + n.parent.name + "/" + parentID + "/" + k.nested
	}
	rows, offset, err := s.st.List(ctx, k.table, page)
	if err == nil {
		err = s.renderRows(ctx, k, rows)
	}
	if err != nil {
		s.writeError(w, r, listError(err, page))
		return
	}
	writeJSON(w, http.StatusOK, pageBody(rows, offset, nextPath(base, offset, q, n == nil)))
}

// listError words a malformed offset as Kong does.
func listError(err error, page store.Page) error {
	var oe *store.OffsetError
	if errors.As(err, &oe) {
		return entity.InvalidOffset(page.Offset, oe.Reason)
	}
	return err
}

func pageBody(rows []store.Row, offset, next string) listPage {
	body := listPage{Data: make([]json.RawMessage, len(rows)), Offset: offset}
	for i, row := range rows {
		body.Data[i] = row.Doc
	}
	if offset != "" {
		body.Next = &next
	}
	return body
}

// nextPath is Kong's "next": offset, then tags and size as requested
// (top-level collections only).
func nextPath(base, offset string, q url.Values, withFilters bool) string {
	next := base + "?offset=" + url.QueryEscape(offset)
	if !withFilters {
		return next
	}
	if q.Has("tags") {
		next += "&tags=" + url.QueryEscape(q.Get("tags"))
	}
	if q.Has("size") {
		next += "&size=" + url.QueryEscape(q.Get("size"))
	}
	return next
}

// parsePage reads size and offset the way Kong's collection endpoint does.
func parsePage(q url.Values) (store.Page, error) {
	p := store.Page{Size: store.DefaultPageSize, Offset: q.Get("offset")}
	if q.Has("size") {
		size, err := parseSize(q.Get("size"))
		if err != nil {
			return p, err
		}
		p.Size = size
	}
	return p, nil
}

// parseTagFilter reads ?tags= as kong/api/endpoints.lua extract_options
// does; no tags parameter is no filter.
func parseTagFilter(q url.Values) ([]string, bool, error) {
	if !q.Has("tags") {
		return nil, false, nil
	}
	return parseTags(q.Get("tags"))
}

func parseSize(v string) (int, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) {
		return 0, entity.InvalidSize("size must be a number")
	}
	if f != math.Trunc(f) || f < 1 || f > store.MaxPageSize {
		return 0, entity.InvalidSize("size must be an integer between 1 and 1000")
	}
	return int(f), nil
}

// parseTags splits "a,b" (all of) or "a/b" (any of); mixing is an error.
func parseTags(v string) ([]string, bool, error) {
	if v == "" {
		return nil, false, errFilterEmpty
	}
	hasAnd, hasOr := strings.Contains(v, ","), strings.Contains(v, "/")
	if hasAnd && hasOr {
		return nil, false, errFilterSyntax
	}
	sep := ","
	if hasOr {
		sep = "/"
	}
	tags := strings.Split(v, sep)
	for _, t := range tags {
		if !entity.ValidTag(t) {
			return nil, false, errFilterSyntax
		}
	}
	if len(tags) > maxQueryTags {
		return nil, false, entity.InvalidOptions("tags", "cannot query more than 5 tags")
	}
	return tags, hasOr, nil
}
