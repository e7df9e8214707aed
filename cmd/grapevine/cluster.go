package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/grapevine-gw/grapevine/admin"
)

const clusterUsage = `cluster members [--json] | force-leave NAME | reachability | keys list|install KEY|use KEY|remove KEY
                [--admin URL | -c FILE] [--ca FILE] [--tls-cert FILE --tls-key FILE]`

func runCluster(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("cluster", clusterUsage, out)
	confPath := confFlag(fs)
	adminFlag := fs.String("admin", "", "Admin API URL of any node (default: admin_listen from -c, else http://127.0.0.1:8001)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	var tf tlsFlags
	fs.StringVar(&tf.ca, "ca", "", "CA certificates (PEM file) to check an https Admin API against (default: the system's, or admin_ssl_cert from -c)")
	fs.StringVar(&tf.cert, "tls-cert", "", "client certificate (PEM file) for an Admin API that checks them (nginx_admin_ssl_verify_client)")
	fs.StringVar(&tf.key, "tls-key", "", "the client certificate's key (PEM file)")
	words, flagArgs := splitWords(args)
	if err := parseFlags(fs, flagArgs, 0); err != nil {
		return err
	}
	base, pinned, err := clusterAdminURL(*adminFlag, *confPath)
	if err != nil {
		return err
	}
	httpClient, err := tf.client(pinned)
	if err != nil {
		return err
	}
	c := adminClient{base: base, http: httpClient}
	switch {
	case len(words) == 1 && words[0] == "members":
		return printMembers(ctx, c, out, *asJSON)
	case len(words) == 2 && words[0] == "force-leave":
		if err := c.do(ctx, http.MethodDelete, "/cluster/nodes/"+url.PathEscape(words[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "node %s removed from the cluster\n", words[1])
		return nil
	case len(words) == 1 && words[0] == "reachability":
		return printReachability(ctx, c, out, *asJSON)
	case len(words) >= 2 && words[0] == "keys":
		return runKeys(ctx, c, words[1:], out)
	}
	fmt.Fprintf(out, "unknown or incomplete cluster command %q\n", strings.Join(words, " "))
	fs.Usage()
	return errUsage
}

// splitWords separates positional words from flags (and their values).
func splitWords(args []string) (words, flags []string) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case strings.HasPrefix(arg, "-"):
			flags = append(flags, arg)
			if takesValue(arg) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			words = append(words, arg)
		}
	}
	return words, flags
}

// clusterAdminURL is the Admin API to call: --admin, else the first
// admin_listen entry of the configuration (https when it is flagged ssl,
// trusted as pinning says; nil for plain HTTP and for --admin).
func clusterAdminURL(flagValue, confPath string) (string, *pinning, error) {
	if flagValue != "" {
		u, err := url.Parse(flagValue)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", nil, fmt.Errorf("--admin %q is not an http(s) URL", flagValue)
		}
		return strings.TrimRight(flagValue, "/"), nil, nil
	}
	cfg, err := loadConfig(confPath)
	if err != nil {
		return "", nil, err
	}
	if len(cfg.AdminListen) == 0 {
		return "", nil, errors.New("admin_listen is off; pass --admin URL of a node")
	}
	base := adminURL(cfg.AdminListen[0])
	if !strings.HasPrefix(base, "https:") {
		return base, nil, nil
	}
	return base, &pinning{certs: cfg.AdminSSLCert}, nil
}

// adminClient calls a node's Admin API.
type adminClient struct {
	base string
	http *http.Client
}

func (c adminClient) do(ctx context.Context, method, path string, body, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var reader io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var msg struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &msg)
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, msg.Message)
	}
	if into != nil {
		if err := json.Unmarshal(raw, into); err != nil {
			return fmt.Errorf("decoding %s: %w", path, err)
		}
	}
	return nil
}

func printMembers(ctx context.Context, c adminClient, out io.Writer, asJSON bool) error {
	var status admin.ClusterStatus
	if err := c.do(ctx, http.MethodGet, "/cluster", nil, &status); err != nil {
		return err
	}
	if asJSON {
		return writeIndented(out, status)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLUSTER ADDRESS\tPROXY ADDRESS\tSTATUS\tCONFIG HASH\tLAST CHANGE")
	for _, m := range status.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ClusterAddr, m.ProxyAddr, m.Status, dash(m.ConfigHash), sinceMillis(m.LastAppliedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\n"+agreementLine(status))
	return nil
}

// agreementLine sums up the hashes the members answered with; a member
// that did not answer in time makes agreement unknown, not assumed.
func agreementLine(status admin.ClusterStatus) string {
	var silent []string
	for _, m := range status.Members {
		if (m.Status == "alive" || m.Status == "suspect") && m.ConfigHash == "unknown" {
			silent = append(silent, m.Name)
		}
	}
	switch {
	case status.ConfigHashAgreed:
		return "config: every alive node serves " + status.ConfigHash
	case len(silent) > 0:
		return fmt.Sprintf("config: UNKNOWN whether nodes agree: %s did not answer in time", strings.Join(silent, ", "))
	default:
		return "config: nodes serve DIFFERENT configurations (a change may still be spreading)"
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sinceMillis(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return time.Since(time.UnixMilli(*ms)).Round(time.Second).String() + " ago"
}

func printReachability(ctx context.Context, c adminClient, out io.Writer, asJSON bool) error {
	var r admin.Reachability
	if err := c.do(ctx, http.MethodGet, "/cluster/reachability", nil, &r); err != nil {
		return err
	}
	if asJSON {
		return writeIndented(out, r)
	}
	fmt.Fprintf(out, "answered: %s\n", strings.Join(r.Answered, ", "))
	if len(r.Missing) > 0 {
		fmt.Fprintf(out, "MISSING:  %s\n", strings.Join(r.Missing, ", "))
		return fmt.Errorf("%d node(s) did not answer over gossip", len(r.Missing))
	}
	fmt.Fprintln(out, "every alive node answered over gossip")
	return nil
}

func runKeys(ctx context.Context, c adminClient, words []string, out io.Writer) error {
	var report admin.KeyReport
	var err error
	switch {
	case len(words) == 1 && words[0] == "list":
		err = c.do(ctx, http.MethodGet, "/cluster/keys", nil, &report)
	case len(words) == 2 && words[0] == "install":
		err = c.do(ctx, http.MethodPost, "/cluster/keys", map[string]string{"key": words[1]}, &report)
	case len(words) == 2 && (words[0] == "use" || words[0] == "remove"):
		err = c.do(ctx, http.MethodPost, "/cluster/keys/"+words[0], map[string]string{"key": words[1]}, &report)
	default:
		return fmt.Errorf("usage: grapevine cluster keys list | install KEY | use KEY | remove KEY")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d of %d nodes answered\n", report.Responses, report.Nodes)
	for key, count := range report.Keys {
		primary := ""
		if report.Primary[key] > 0 {
			primary = fmt.Sprintf(" (primary on %d)", report.Primary[key])
		}
		fmt.Fprintf(out, "  %s  on %d nodes%s\n", key, count, primary)
	}
	return nil
}

func writeIndented(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
