package dev.handshaker.client;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/** JSSE contexts from the keystore's PEM files: a credential folder and the development CA. */
final class Pki {
  private static final char[] PASSWORD = "unused".toCharArray();

  private Pki() {}

  /** An SSLContext that trusts {@code caPem} and, when {@code credentialDir} is set, presents it. */
  static SSLContext context(String caPem, Path credentialDir) throws Exception {
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    int i = 0;
    for (Certificate ca : certificates(caPem)) {
      trust.setCertificateEntry("ca" + i++, ca);
    }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    KeyManagerFactory kmf = null;
    if (credentialDir != null) {
      KeyStore keys = KeyStore.getInstance("PKCS12");
      keys.load(null, null);
      Certificate[] chain =
          certificates(Files.readString(credentialDir.resolve("tls.crt"))).toArray(new Certificate[0]);
      keys.setKeyEntry("credential", privateKey(Files.readString(credentialDir.resolve("tls.key"))), PASSWORD, chain);
      kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
      kmf.init(keys, PASSWORD);
    }
    SSLContext context = SSLContext.getInstance("TLSv1.3");
    context.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
    return context;
  }

  static java.util.Collection<? extends Certificate> certificates(String pem) throws Exception {
    return CertificateFactory.getInstance("X.509")
        .generateCertificates(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
  }

  /** A PKCS#8 PEM private key (the keystore writes EC and RSA keys that way). */
  static PrivateKey privateKey(String pem) throws Exception {
    String base64 =
        pem.replace("-----BEGIN PRIVATE KEY-----", "")
            .replace("-----END PRIVATE KEY-----", "")
            .replaceAll("\\s", "");
    PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(base64));
    try {
      return KeyFactory.getInstance("EC").generatePrivate(spec);
    } catch (java.security.spec.InvalidKeySpecException notEc) {
      return KeyFactory.getInstance("RSA").generatePrivate(spec);
    }
  }
}
