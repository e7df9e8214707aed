// Package entity owns Grapevine's configuration entities as Kong defines them:
// their Go types, their schemas (fields, defaults, validation) and Kong's
// error shapes for bad input. It does no I/O: the store persists entities,
// the admin package decodes and renders them, the proxy builds its snapshot
// from them. It must not import any of those packages.
package entity

// KongVersion is the Kong Gateway version whose entities, Admin API and
// configuration Grapevine follows; GET / reports it as "version", which
// clients such as go-kong and decK read to pick their behaviour.
const KongVersion = "3.9.1"

// ForeignKey is how Kong renders a reference to another entity: {"id": "<uuid>"}.
type ForeignKey struct {
	ID string `json:"id"`
}

// Service is Kong's service entity: where requests matched by its routes go.
type Service struct {
	ID                string      `json:"id"`
	CreatedAt         int64       `json:"created_at"`
	UpdatedAt         int64       `json:"updated_at"`
	Name              *string     `json:"name"`
	Retries           int         `json:"retries"`
	Protocol          string      `json:"protocol"`
	Host              string      `json:"host"`
	Port              int         `json:"port"`
	Path              *string     `json:"path"`
	ConnectTimeout    int         `json:"connect_timeout"`
	WriteTimeout      int         `json:"write_timeout"`
	ReadTimeout       int         `json:"read_timeout"`
	Tags              []string    `json:"tags"`
	ClientCertificate *ForeignKey `json:"client_certificate"`
	TLSVerify         *bool       `json:"tls_verify"`
	TLSVerifyDepth    *int        `json:"tls_verify_depth"`
	CACertificates    []string    `json:"ca_certificates"`
	Enabled           bool        `json:"enabled"`
}

// CIDRPort is one element of a route's sources or destinations.
type CIDRPort struct {
	IP   *string `json:"ip,omitempty"`
	Port *int    `json:"port,omitempty"`
}

// Route is Kong's route entity: which requests match, and the service they go to.
type Route struct {
	ID                      string              `json:"id"`
	CreatedAt               int64               `json:"created_at"`
	UpdatedAt               int64               `json:"updated_at"`
	Name                    *string             `json:"name"`
	Protocols               []string            `json:"protocols"`
	Methods                 []string            `json:"methods"`
	Hosts                   []string            `json:"hosts"`
	Paths                   []string            `json:"paths"`
	Headers                 map[string][]string `json:"headers"`
	SNIs                    []string            `json:"snis"`
	Sources                 []CIDRPort          `json:"sources"`
	Destinations            []CIDRPort          `json:"destinations"`
	HTTPSRedirectStatusCode int                 `json:"https_redirect_status_code"`
	RegexPriority           int                 `json:"regex_priority"`
	StripPath               bool                `json:"strip_path"`
	PathHandling            string              `json:"path_handling"`
	PreserveHost            bool                `json:"preserve_host"`
	RequestBuffering        bool                `json:"request_buffering"`
	ResponseBuffering       bool                `json:"response_buffering"`
	Tags                    []string            `json:"tags"`
	Service                 *ForeignKey         `json:"service"`
}

// Strings is the strings of a decoded JSON array (tags, snis, …); nil when
// v is not an array, and its other elements are left out.
func Strings(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
