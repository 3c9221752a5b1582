package dev.handshaker.client.keyless;

import java.net.Socket;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.net.ssl.ExtendedSSLSession;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedKeyManager;

/**
 * A JSSE key manager whose credentials stay in the handshaker keystore: aliases are credential
 * names, chains come from GetCredential and private keys are {@link KeylessPrivateKey}s that the
 * {@link KeylessProvider} (installed by the constructor) signs and decrypts with.
 *
 * <p>A server picks, among the credentials of the key type JSSE asks for ("EC", "RSA", "EdDSA"),
 * the first whose leaf names the client's SNI host name (dNSName SANs, "*.example.com"
 * wildcards), else the first of that type; a client picks the first credential of a requested
 * key type issued by one of the server's requested authorities (any, when the server named none).
 * Order is the order given.
 */
public final class KeylessKeyManager extends X509ExtendedKeyManager {
  private final Map<String, KeylessPrivateKey> keys = new LinkedHashMap<>();

  public KeylessKeyManager(KeylessClient client, Collection<KeylessCredential> credentials) {
    if (credentials.isEmpty()) {
      throw new IllegalArgumentException("a key manager needs at least one credential");
    }
    KeylessProvider.install();
    for (KeylessCredential credential : credentials) {
      keys.put(credential.name(), KeylessPrivateKey.of(client, credential));
    }
  }

  /** Fetches each credential's public half with GetCredential (NOT_FOUND, PERMISSION_DENIED, ...). */
  public static KeylessKeyManager of(KeylessClient client, String... credentialNames) throws KeylessException {
    List<KeylessCredential> credentials = new ArrayList<>();
    for (String name : credentialNames) {
      credentials.add(client.credential(name));
    }
    return new KeylessKeyManager(client, credentials);
  }

  @Override
  public String[] getClientAliases(String keyType, Principal[] issuers) {
    return aliases(keyType, issuers);
  }

  @Override
  public String[] getServerAliases(String keyType, Principal[] issuers) {
    return aliases(keyType, issuers);
  }

  private String[] aliases(String keyType, Principal[] issuers) {
    List<String> names = new ArrayList<>();
    for (KeylessPrivateKey key : keys.values()) {
      if (key.getAlgorithm().equals(keyType) && issuedBy(key, issuers)) {
        names.add(key.credential().name());
      }
    }
    return names.isEmpty() ? null : names.toArray(new String[0]);
  }

  @Override
  public String chooseClientAlias(String[] keyTypes, Principal[] issuers, Socket socket) {
    return chooseClient(keyTypes, issuers);
  }

  @Override
  public String chooseEngineClientAlias(String[] keyTypes, Principal[] issuers, SSLEngine engine) {
    return chooseClient(keyTypes, issuers);
  }

  private String chooseClient(String[] keyTypes, Principal[] issuers) {
    for (String keyType : keyTypes) {
      String[] names = aliases(keyType, issuers);
      if (names != null) {
        return names[0];
      }
    }
    return null;
  }

  @Override
  public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
    SSLSession session = socket instanceof SSLSocket ? ((SSLSocket) socket).getHandshakeSession() : null;
    return chooseServer(keyType, session);
  }

  @Override
  public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
    return chooseServer(keyType, engine == null ? null : engine.getHandshakeSession());
  }

  // The server's own issuers do not matter: a client's CA list is a hint, not a requirement here,
  // since a name match decides.
  private String chooseServer(String keyType, SSLSession session) {
    String sni = requestedHostName(session);
    KeylessPrivateKey first = null;
    for (KeylessPrivateKey key : keys.values()) {
      if (!key.getAlgorithm().equals(keyType)) {
        continue;
      }
      if (first == null) {
        first = key;
      }
      if (sni != null && namesHost(key.credential().leaf(), sni)) {
        return key.credential().name();
      }
    }
    return first == null ? null : first.credential().name();
  }

  @Override
  public X509Certificate[] getCertificateChain(String alias) {
    KeylessPrivateKey key = keys.get(alias);
    return key == null ? null : key.credential().chain();
  }

  @Override
  public PrivateKey getPrivateKey(String alias) {
    return keys.get(alias);
  }

  private static String requestedHostName(SSLSession session) {
    if (!(session instanceof ExtendedSSLSession)) {
      return null;
    }
    for (SNIServerName name : ((ExtendedSSLSession) session).getRequestedServerNames()) {
      if (name instanceof SNIHostName) {
        return ((SNIHostName) name).getAsciiName().toLowerCase(Locale.ROOT);
      }
    }
    return null;
  }

  static boolean namesHost(X509Certificate leaf, String host) {
    Collection<List<?>> names;
    try {
      names = leaf.getSubjectAlternativeNames();
    } catch (CertificateParsingException e) {
      return false;
    }
    if (names == null) {
      return false;
    }
    for (List<?> entry : names) {
      if (Integer.valueOf(2).equals(entry.get(0))) {
        String dns = ((String) entry.get(1)).toLowerCase(Locale.ROOT);
        if (dns.equals(host)
            || (dns.startsWith("*.") && host.endsWith(dns.substring(1)) && host.indexOf('.') == host.length() - dns.length() + 1)) {
          return true;
        }
      }
    }
    return false;
  }

  private static boolean issuedBy(KeylessPrivateKey key, Principal[] issuers) {
    if (issuers == null || issuers.length == 0) {
      return true;
    }
    for (X509Certificate certificate : key.credential().chain()) {
      for (Principal issuer : issuers) {
        if (certificate.getIssuerX500Principal().equals(issuer)) {
          return true;
        }
      }
    }
    return false;
  }
}
