package gossip

import (
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/hashicorp/serf/serf"
)

// KeyReport is the cluster-wide answer to a keyring operation.
type KeyReport struct {
	NumNodes int
	NumResp  int
	Errors   map[string]string // node -> error message
	Keys     map[string]int    // base64 key -> how many nodes have it (list only)
	Primary  map[string]int    // base64 key -> how many nodes use it as primary (list only)
}

// ListKeys asks every member which gossip keys it holds.
func (c *Cluster) ListKeys() (KeyReport, error) {
	resp, err := c.keyManager().ListKeys()
	return keyReport(resp), keyErr("list keys", resp, err)
}

// InstallKey adds a key to every member's keyring (not yet used to encrypt).
func (c *Cluster) InstallKey(key string) (KeyReport, error) {
	if err := checkKey(key); err != nil {
		return KeyReport{}, err
	}
	resp, err := c.keyManager().InstallKey(key)
	return keyReport(resp), keyErr("install key", resp, err)
}

// UseKey makes an installed key the one every member encrypts with.
func (c *Cluster) UseKey(key string) (KeyReport, error) {
	if err := checkKey(key); err != nil {
		return KeyReport{}, err
	}
	resp, err := c.keyManager().UseKey(key)
	return keyReport(resp), keyErr("use key", resp, err)
}

// RemoveKey deletes a key that is no longer primary from every member.
func (c *Cluster) RemoveKey(key string) (KeyReport, error) {
	if err := checkKey(key); err != nil {
		return KeyReport{}, err
	}
	resp, err := c.keyManager().RemoveKey(key)
	return keyReport(resp), keyErr("remove key", resp, err)
}

func (c *Cluster) keyManager() *serf.KeyManager {
	return c.serf.KeyManager()
}

func checkKey(key string) error {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return fmt.Errorf("key is not valid base64: %w", err)
	}
	if n := len(raw); n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("key decodes to %d bytes, want 16, 24 or 32", n)
	}
	return nil
}

func keyReport(resp *serf.KeyResponse) KeyReport {
	if resp == nil {
		return KeyReport{}
	}
	return KeyReport{NumNodes: resp.NumNodes, NumResp: resp.NumResp, Errors: resp.Messages, Keys: resp.Keys, Primary: resp.PrimaryKeys}
}

func keyErr(op string, resp *serf.KeyResponse, err error) error {
	if err == nil {
		return nil
	}
	if resp != nil && len(resp.Messages) > 0 {
		nodes := make([]string, 0, len(resp.Messages))
		for node, msg := range resp.Messages {
			nodes = append(nodes, node+": "+msg)
		}
		sort.Strings(nodes)
		return fmt.Errorf("%s: %w (%v)", op, err, nodes)
	}
	return fmt.Errorf("%s: %w", op, err)
}
