package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// What Kong's certificates and CA certificates do beyond the generic
// endpoints: kong/api/routes/certificates.lua (a certificate named by one
// of its SNIs), kong/db/dao/certificates.lua and snis.lua (the snis
// shorthand, written with the certificate; SNIs deleted with it) and
// kong/db/dao/ca_certificates.lua (a CA certificate a service trusts is
// not deleted).
func init() {
	kindHooksByTable["certificates"] = &kindHooks{
		resolveRef:   resolveCertificateBySNI,
		afterWrite:   writeCertificateSNIs,
		beforeDelete: deleteCertificateSNIs,
		render:       renderCertificateSNIs,
	}
	kindHooksByTable["ca_certificates"] = &kindHooks{beforeDelete: refuseTrustedCA}
}

var errSNINotFound = &httpError{http.StatusNotFound, "SNI not found"}

// sniNameKey carries the SNI name a certificate's path named it by.
type sniNameKey struct{}

// resolveCertificateBySNI finds the certificate that serves the SNI ref.
// A PUT to a name no SNI has creates a certificate under a new id, which
// then gets that name among its snis.
func resolveCertificateBySNI(ctx context.Context, s *Server, method, ref string) (context.Context, string, error) {
	snis := s.kinds.byTable["snis"]
	dbCtx, cancel := context.WithTimeout(ctx, s.cfg.DBTimeout)
	defer cancel()
	row, err := s.st.GetByKey(dbCtx, snis.table, ref)
	switch {
	case err == nil:
		return context.WithValue(ctx, sniNameKey{}, ref), row.Foreign["certificate"], nil
	case !errors.Is(err, store.ErrNotFound):
		return ctx, "", fmt.Errorf("certificate by sni %q: %w", ref, err)
	case method != http.MethodPut:
		return ctx, "", errSNINotFound
	}
	return context.WithValue(ctx, sniNameKey{}, ref), uuid.NewString(), nil
}

// writeCertificateSNIs makes the certificate's SNIs the names of its snis
// field, when given: new names are added, missing ones deleted. A name
// given twice, or served by another certificate, is refused with Kong's
// schema violation on snis.
func writeCertificateSNIs(ctx context.Context, s *Server, x *store.Tx, cert store.Row, transient map[string]any) error {
	given, ok := transient["snis"]
	if !ok {
		return nil
	}
	names := entity.Strings(given)
	if name, _ := ctx.Value(sniNameKey{}).(string); name != "" && given != nil && !slices.Contains(names, name) {
		// kong/api/routes/certificates.lua: a PUT by SNI name keeps the name.
		names = append(names, name)
	}
	if err := checkSNINames(ctx, s, x, cert.ID, names); err != nil {
		return err
	}
	snis := s.kinds.byTable["snis"]
	current, err := x.Referring(ctx, snis.table, "certificate", cert.ID)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, row := range current {
		if row.Key != nil && !slices.Contains(names, *row.Key) {
			if _, err := x.Delete(ctx, snis.table, row.ID); err != nil {
				return err
			}
		}
		if row.Key != nil {
			have[*row.Key] = true
		}
	}
	for _, name := range names {
		if !have[name] {
			if err := insertSNI(ctx, x, snis, name, cert.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSNINames refuses duplicates and names another certificate serves
// (kong/db/dao/certificates.lua parse_name_list, snis.lua check_list_is_new).
func checkSNINames(ctx context.Context, s *Server, x *store.Tx, certID string, names []string) error {
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			return entity.SchemaViolation(entity.FieldErrors{"snis": name + " is duplicated"})
		}
		seen[name] = true
	}
	snis := s.kinds.byTable["snis"]
	for _, name := range names {
		row, err := x.GetByKey(ctx, snis.table, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if owner := row.Foreign["certificate"]; owner != certID {
			return entity.SchemaViolation(entity.FieldErrors{
				"snis": fmt.Sprintf("%s already associated with existing certificate '%s'", name, owner)})
		}
	}
	return nil
}

func insertSNI(ctx context.Context, x *store.Tx, snis *kind, name, certID string) error {
	now := time.Now().Unix()
	doc, verr := snis.schema.Validate(map[string]any{
		"id": uuid.NewString(), "name": name, "certificate": map[string]any{"id": certID},
		"created_at": now, "updated_at": now,
	})
	if verr != nil {
		return verr // names were validated as the certificate's snis
	}
	row, err := toRow(snis, doc)
	if err != nil {
		return err
	}
	_, err = x.Insert(ctx, snis.table, row)
	return err
}

// deleteCertificateSNIs deletes the certificate's SNIs first, as Kong's
// certificates DAO does, here in the same transaction.
func deleteCertificateSNIs(ctx context.Context, s *Server, x *store.Tx, id string) error {
	snis := s.kinds.byTable["snis"]
	rows, err := x.Referring(ctx, snis.table, "certificate", id)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if _, err := x.Delete(ctx, snis.table, row.ID); err != nil {
			return err
		}
	}
	return nil
}

// renderCertificateSNIs adds "snis", the sorted names of each
// certificate's SNIs, as Kong's select_with_name_list and page do.
func renderCertificateSNIs(ctx context.Context, s *Server, rows []store.Row) error {
	snis := s.kinds.byTable["snis"]
	for i := range rows {
		list, err := s.st.Referring(ctx, snis.table, "certificate", rows[i].ID)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(list))
		for _, sni := range list {
			if sni.Key != nil {
				names = append(names, *sni.Key)
			}
		}
		sort.Strings(names)
		if rows[i].Doc, err = withField(rows[i].Doc, "snis", names); err != nil {
			return err
		}
	}
	return nil
}

// withField returns doc with one more top-level field.
func withField(doc json.RawMessage, name string, v any) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m[name] = b
	return json.Marshal(m)
}

// refuseTrustedCA keeps a CA certificate that a service's ca_certificates
// still names (Kong's check_ca_reference).
func refuseTrustedCA(ctx context.Context, s *Server, x *store.Tx, id string) error {
	services := s.kinds.byTable["services"]
	sid, err := x.FirstWithElement(ctx, services.table, "ca_certificates", id)
	if err != nil || sid == "" {
		return err
	}
	return entity.ReferencedByOthers(fmt.Sprintf("ca certificate %s is still referenced by services (id = %s)", id, sid))
}
