package entity

import (
	"crypto/rand"
	"encoding/base64"
	"math/big"
	"strings"
)

// FillAutoStrings gives every auto string field the input leaves out (not
// one it sets to null) a random value, as Kong does on insert and upsert
// (process_auto_fields in kong/db/schema/init.lua): a key-auth key, a jwt
// key and secret, an oauth2 client_id.
func FillAutoStrings(s *Schema, in map[string]any) {
	for _, f := range s.Fields {
		if !f.Auto || f.UUID || f.Type != TypeString {
			continue
		}
		if _, present := in[f.Name]; !present {
			in[f.Name] = RandomString()
		}
	}
}

// RandomString is 32 characters from 24 random bytes in base64 with '/'
// and '+' replaced by random letters, the shape of Kong's random_string
// (kong/tools/rand.lua).
func RandomString() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("entity: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/':
			out.WriteByte(randomLetter('A'))
		case '+':
			out.WriteByte(randomLetter('a'))
		default:
			out.WriteByte(s[i])
		}
	}
	return out.String()
}

func randomLetter(base byte) byte {
	n, err := rand.Int(rand.Reader, big.NewInt(26))
	if err != nil {
		panic("entity: no randomness: " + err.Error())
	}
	return base + byte(n.Int64())
}
