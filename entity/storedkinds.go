package entity

// The readers of the kinds a big configuration is made of (storedjson.go):
// each takes exactly the members its type's json tags name, and reports
// false for anything it leaves to encoding/json.

var serviceFields = []string{"id", "created_at", "updated_at", "name", "retries", "protocol", "host", "port", "path",
	"connect_timeout", "write_timeout", "read_timeout", "tags", "client_certificate", "tls_verify", "tls_verify_depth",
	"ca_certificates", "enabled"}

func readService(doc []byte) (Service, bool) {
	var v Service
	r := jsonReader{b: doc}
	r.object(serviceFields, func(r *jsonReader, key []byte) int {
		switch string(key) {
		case "id":
			v.ID = r.str(false)
			return 0
		case "created_at":
			v.CreatedAt = r.int()
			return 1
		case "updated_at":
			v.UpdatedAt = r.int()
			return 2
		case "name":
			v.Name = r.stringPtr()
			return 3
		case "retries":
			v.Retries = r.intField()
			return 4
		case "protocol":
			v.Protocol = r.str(true)
			return 5
		case "host":
			v.Host = r.str(false)
			return 6
		case "port":
			v.Port = r.intField()
			return 7
		case "path":
			v.Path = r.stringPtr()
			return 8
		case "connect_timeout":
			v.ConnectTimeout = r.intField()
			return 9
		case "write_timeout":
			v.WriteTimeout = r.intField()
			return 10
		case "read_timeout":
			v.ReadTimeout = r.intField()
			return 11
		case "tags":
			v.Tags = r.stringList(false)
			return 12
		case "client_certificate":
			v.ClientCertificate = r.foreignKey()
			return 13
		case "tls_verify":
			v.TLSVerify = r.boolPtr()
			return 14
		case "tls_verify_depth":
			v.TLSVerifyDepth = r.intPtr()
			return 15
		case "ca_certificates":
			v.CACertificates = r.stringList(false)
			return 16
		case "enabled":
			v.Enabled = r.bool()
			return 17
		}
		return -1
	})
	return v, r.done()
}

var routeFields = []string{"id", "created_at", "updated_at", "name", "protocols", "methods", "hosts", "paths", "headers",
	"snis", "sources", "destinations", "https_redirect_status_code", "regex_priority", "strip_path", "path_handling",
	"preserve_host", "request_buffering", "response_buffering", "tags", "service"}

func readRoute(doc []byte) (Route, bool) {
	var v Route
	r := jsonReader{b: doc}
	r.object(routeFields, func(r *jsonReader, key []byte) int {
		switch string(key) {
		case "id":
			v.ID = r.str(false)
			return 0
		case "created_at":
			v.CreatedAt = r.int()
			return 1
		case "updated_at":
			v.UpdatedAt = r.int()
			return 2
		case "name":
			v.Name = r.stringPtr()
			return 3
		case "protocols":
			v.Protocols = r.stringList(true)
			return 4
		case "methods":
			v.Methods = r.stringList(true)
			return 5
		case "hosts":
			v.Hosts = r.stringList(false)
			return 6
		case "paths":
			v.Paths = r.stringList(false)
			return 7
		case "headers":
			v.Headers = r.headers()
			return 8
		case "snis":
			v.SNIs = r.stringList(false)
			return 9
		case "sources":
			v.Sources = r.noCIDRPorts()
			return 10
		case "destinations":
			v.Destinations = r.noCIDRPorts()
			return 11
		case "https_redirect_status_code":
			v.HTTPSRedirectStatusCode = r.intField()
			return 12
		case "regex_priority":
			v.RegexPriority = r.intField()
			return 13
		case "strip_path":
			v.StripPath = r.bool()
			return 14
		case "path_handling":
			v.PathHandling = r.str(true)
			return 15
		case "preserve_host":
			v.PreserveHost = r.bool()
			return 16
		case "request_buffering":
			v.RequestBuffering = r.bool()
			return 17
		case "response_buffering":
			v.ResponseBuffering = r.bool()
			return 18
		case "tags":
			v.Tags = r.stringList(false)
			return 19
		case "service":
			v.Service = r.foreignKey()
			return 20
		}
		return -1
	})
	return v, r.done()
}

var pluginFields = []string{"id", "name", "instance_name", "created_at", "updated_at", "route", "service", "consumer",
	"config", "protocols", "enabled", "tags", "ordering"}

func readPlugin(doc []byte) (Plugin, bool) {
	var v Plugin
	r := jsonReader{b: doc}
	r.object(pluginFields, func(r *jsonReader, key []byte) int {
		switch string(key) {
		case "id":
			v.ID = r.str(false)
			return 0
		case "name":
			v.Name = r.str(true)
			return 1
		case "instance_name":
			v.InstanceName = r.stringPtr()
			return 2
		case "created_at":
			v.CreatedAt = r.int()
			return 3
		case "updated_at":
			v.UpdatedAt = r.int()
			return 4
		case "route":
			v.Route = r.foreignKey()
			return 5
		case "service":
			v.Service = r.foreignKey()
			return 6
		case "consumer":
			v.Consumer = r.foreignKey()
			return 7
		case "config":
			v.Config = r.anyMap()
			return 8
		case "protocols":
			v.Protocols = r.stringList(true)
			return 9
		case "enabled":
			v.Enabled = r.bool()
			return 10
		case "tags":
			v.Tags = r.stringList(false)
			return 11
		case "ordering":
			v.Ordering = r.anyMap()
			return 12
		}
		return -1
	})
	return v, r.done()
}

var consumerFields = []string{"id", "created_at", "updated_at", "username", "custom_id", "tags"}

func readConsumer(doc []byte) (Consumer, bool) {
	var v Consumer
	r := jsonReader{b: doc}
	r.object(consumerFields, func(r *jsonReader, key []byte) int {
		switch string(key) {
		case "id":
			v.ID = r.str(false)
			return 0
		case "created_at":
			v.CreatedAt = r.int()
			return 1
		case "updated_at":
			v.UpdatedAt = r.int()
			return 2
		case "username":
			v.Username = r.stringPtr()
			return 3
		case "custom_id":
			v.CustomID = r.stringPtr()
			return 4
		case "tags":
			v.Tags = r.stringList(false)
			return 5
		}
		return -1
	})
	return v, r.done()
}

var keyAuthFields = []string{"id", "created_at", "consumer", "tags", "key"}

func readKeyAuthCredential(doc []byte) (KeyAuthCredential, bool) {
	var v KeyAuthCredential
	r := jsonReader{b: doc}
	r.object(keyAuthFields, func(r *jsonReader, key []byte) int {
		switch string(key) {
		case "id":
			v.ID = r.str(false)
			return 0
		case "created_at":
			v.CreatedAt = r.int()
			return 1
		case "consumer":
			v.Consumer = r.foreignKey()
			return 2
		case "tags":
			v.Tags = r.stringList(false)
			return 3
		case "key":
			v.Key = r.str(false)
			return 4
		}
		return -1
	})
	return v, r.done()
}
