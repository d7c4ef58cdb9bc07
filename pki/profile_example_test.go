package pki_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log"

	"github.com/mirrorkv/mirrorkv/pki"
)

// The subject as MariaDB compares it with REQUIRE SUBJECT.
func ExampleOneline() {
	name := pkix.Name{Country: []string{"DE"}, Organization: []string{"Acme"}, CommonName: "db2"}
	der, err := asn1.Marshal(name.ToRDNSequence())
	if err != nil {
		log.Fatal(err)
	}
	s, err := pki.Oneline(der)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s)
	// Output: /C=DE/O=Acme/CN=db2
}

func ExampleProfiles() {
	for _, p := range pki.Profiles() {
		fmt.Println(p.Name, p.Uses(), pki.FileFor(p.Layout("db2", false), pki.FileCert))
	}
	// Output:
	// iris serverAuth, clientAuth db2.pem
	// vast serverAuth, clientAuth db2.crt
	// amlen serverAuth, clientAuth ha_cert.pem
	// mariadb serverAuth, clientAuth server-cert.pem
	// manticore serverAuth server-cert.pem
}
