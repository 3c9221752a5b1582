package dev.handshaker.client.keyless;

import java.io.ByteArrayOutputStream;
import java.security.AlgorithmParameters;
import java.security.InvalidAlgorithmParameterException;
import java.security.InvalidKeyException;
import java.security.InvalidParameterException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.SignatureException;
import java.security.SignatureSpi;
import java.security.spec.AlgorithmParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;

/**
 * Signs with a {@link KeylessPrivateKey} through KeyOperations.Sign: the hash is computed here and
 * its digest sent with the TLS signature scheme the algorithm stands for (Ed25519: the message).
 * Other keys go to the next provider that takes them (see {@link KeylessProvider}).
 */
final class KeylessSignatureSpi extends SignatureSpi {
  enum Algorithm {
    SHA256_ECDSA("SHA256withECDSA", "EC", "SHA-256", 0x0403),
    SHA384_ECDSA("SHA384withECDSA", "EC", "SHA-384", 0x0503),
    SHA512_ECDSA("SHA512withECDSA", "EC", "SHA-512", 0x0603),
    SHA256_RSA("SHA256withRSA", "RSA", "SHA-256", 0x0401),
    SHA384_RSA("SHA384withRSA", "RSA", "SHA-384", 0x0501),
    SHA512_RSA("SHA512withRSA", "RSA", "SHA-512", 0x0601),
    // Hash and scheme come from the PSSParameterSpec.
    RSASSA_PSS("RSASSA-PSS", "RSA", null, 0),
    ED25519("Ed25519", "EdDSA", null, 0x0807);

    final String jcaName;
    final String keyAlgorithm;
    final String digest;
    final int scheme;

    Algorithm(String jcaName, String keyAlgorithm, String digest, int scheme) {
      this.jcaName = jcaName;
      this.keyAlgorithm = keyAlgorithm;
      this.digest = digest;
      this.scheme = scheme;
    }
  }

  private final Algorithm algorithm;
  private KeylessPrivateKey key;
  private MessageDigest digest;
  private final ByteArrayOutputStream message = new ByteArrayOutputStream();
  private PSSParameterSpec pss;
  private int scheme;
  // Set when the key is not keyless: every call goes to another provider's Signature.
  private Signature fallback;

  KeylessSignatureSpi(Algorithm algorithm) {
    this.algorithm = algorithm;
    this.scheme = algorithm.scheme;
    if (algorithm.digest != null) {
      digest = newDigest(algorithm.digest);
    }
  }

  @Override
  protected void engineInitSign(PrivateKey privateKey) throws InvalidKeyException {
    engineInitSign(privateKey, null);
  }

  @Override
  protected void engineInitSign(PrivateKey privateKey, SecureRandom random) throws InvalidKeyException {
    if (!(privateKey instanceof KeylessPrivateKey)) {
      fallback = otherProvider(s -> {
        if (random == null) {
          s.initSign(privateKey);
        } else {
          s.initSign(privateKey, random);
        }
      });
      key = null;
      return;
    }
    KeylessPrivateKey k = (KeylessPrivateKey) privateKey;
    if (!algorithm.keyAlgorithm.equals(k.getAlgorithm())) {
      throw new InvalidKeyException(algorithm.jcaName + " needs an " + algorithm.keyAlgorithm + " key; "
          + k.credential().name() + " is " + k.credential().keyType());
    }
    // Refused at init, not at sign: JSSE tries the next signature scheme only when init fails.
    if (scheme != 0) {
      checkScheme(k, scheme);
    }
    fallback = null;
    key = k;
    reset();
  }

  @Override
  protected void engineInitVerify(PublicKey publicKey) throws InvalidKeyException {
    // Verification needs no keystore: a public key is the stock providers' business.
    fallback = otherProvider(s -> s.initVerify(publicKey));
    key = null;
  }

  private void checkScheme(KeylessPrivateKey k, int s) throws InvalidKeyException {
    // The service takes any ECDSA scheme's hash with the key's curve (TLS 1.2 pairs them freely).
    boolean ecdsa = "EC".equals(algorithm.keyAlgorithm);
    if (!ecdsa && !k.credential().signatureSchemes().contains(s)) {
      throw new InvalidKeyException(String.format(
          "credential %s does not sign with scheme 0x%04x (%s)", k.credential().name(), s, algorithm.jcaName));
    }
  }

  @Override
  protected void engineSetParameter(AlgorithmParameterSpec params) throws InvalidAlgorithmParameterException {
    if (fallback != null) {
      fallback.setParameter(params);
      return;
    }
    if (algorithm != Algorithm.RSASSA_PSS) {
      if (params == null) {
        return;
      }
      throw new InvalidAlgorithmParameterException(algorithm.jcaName + " takes no parameters");
    }
    if (!(params instanceof PSSParameterSpec)) {
      throw new InvalidAlgorithmParameterException("RSASSA-PSS needs a PSSParameterSpec");
    }
    PSSParameterSpec spec = (PSSParameterSpec) params;
    int pssScheme = pssScheme(spec);
    if (key != null) {
      try {
        checkScheme(key, pssScheme);
      } catch (InvalidKeyException e) {
        throw new InvalidAlgorithmParameterException(e.getMessage(), e);
      }
    }
    pss = spec;
    scheme = pssScheme;
    digest = newDigest(spec.getDigestAlgorithm());
  }

  // TLS 1.3's rsa_pss_rsae schemes: MGF1 with the message hash, salt as long as the hash.
  private static int pssScheme(PSSParameterSpec spec) throws InvalidAlgorithmParameterException {
    String hash = spec.getDigestAlgorithm().toUpperCase().replace("SHA", "SHA-").replace("--", "-");
    int scheme;
    int length;
    switch (hash) {
      case "SHA-256":
        scheme = 0x0804;
        length = 32;
        break;
      case "SHA-384":
        scheme = 0x0805;
        length = 48;
        break;
      case "SHA-512":
        scheme = 0x0806;
        length = 64;
        break;
      default:
        throw new InvalidAlgorithmParameterException("RSASSA-PSS with " + spec.getDigestAlgorithm()
            + ": only SHA-256, SHA-384 and SHA-512 are TLS signature schemes");
    }
    AlgorithmParameterSpec mgf = spec.getMGFParameters();
    boolean mgfMatches = "MGF1".equalsIgnoreCase(spec.getMGFAlgorithm())
        && mgf instanceof MGF1ParameterSpec
        && ((MGF1ParameterSpec) mgf).getDigestAlgorithm().replace("SHA", "SHA-").replace("--", "-")
            .equalsIgnoreCase(hash);
    if (!mgfMatches || spec.getSaltLength() != length || spec.getTrailerField() != PSSParameterSpec.TRAILER_FIELD_BC) {
      throw new InvalidAlgorithmParameterException(
          "RSASSA-PSS parameters other than MGF1 with the same hash and a salt of the hash's length"
              + " are no TLS signature scheme");
    }
    return scheme;
  }

  @Override
  protected AlgorithmParameters engineGetParameters() {
    if (fallback != null) {
      return fallback.getParameters();
    }
    if (pss == null) {
      return null;
    }
    try {
      AlgorithmParameters parameters = AlgorithmParameters.getInstance("RSASSA-PSS");
      parameters.init(pss);
      return parameters;
    } catch (Exception e) {
      return null;
    }
  }

  @Override
  protected void engineUpdate(byte b) throws SignatureException {
    engineUpdate(new byte[] {b}, 0, 1);
  }

  @Override
  protected void engineUpdate(byte[] b, int off, int len) throws SignatureException {
    if (fallback != null) {
      fallback.update(b, off, len);
    } else if (key == null) {
      throw new SignatureException("not initialized");
    } else if (digest != null) {
      digest.update(b, off, len);
    } else if (algorithm == Algorithm.ED25519) {
      message.write(b, off, len);
    } else {
      throw new SignatureException("RSASSA-PSS needs its PSSParameterSpec before data");
    }
  }

  @Override
  protected byte[] engineSign() throws SignatureException {
    if (fallback != null) {
      return fallback.sign();
    }
    if (key == null) {
      throw new SignatureException("not initialized for signing");
    }
    if (scheme == 0) {
      throw new SignatureException("RSASSA-PSS needs its PSSParameterSpec");
    }
    try {
      if (algorithm == Algorithm.ED25519) {
        return key.client().sign(key.ref(), scheme, message.toByteArray());
      }
      return key.client().signDigest(key.ref(), scheme, digest.digest());
    } catch (KeylessException e) {
      throw new SignatureException("keyless signature with " + key.credential().name() + " failed: " + e.getMessage(), e);
    } finally {
      reset();
    }
  }

  @Override
  protected boolean engineVerify(byte[] sigBytes) throws SignatureException {
    if (fallback == null) {
      throw new SignatureException("not initialized for verification");
    }
    return fallback.verify(sigBytes);
  }

  @Override
  @Deprecated
  protected void engineSetParameter(String param, Object value) {
    throw new InvalidParameterException("no string parameters");
  }

  @Override
  @Deprecated
  protected Object engineGetParameter(String param) {
    throw new InvalidParameterException("no string parameters");
  }

  private void reset() {
    message.reset();
    if (digest != null) {
      digest.reset();
    }
  }

  private static MessageDigest newDigest(String name) {
    try {
      return MessageDigest.getInstance(name);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("no " + name + " in this JVM", e);
    }
  }

  private interface Init {
    void apply(Signature signature) throws Exception;
  }

  // The first other provider's Signature of this algorithm that accepts the key, with the PSS
  // parameters carried over.
  private Signature otherProvider(Init init) throws InvalidKeyException {
    Provider[] providers = Security.getProviders("Signature." + algorithm.jcaName);
    Exception last = null;
    for (Provider p : providers == null ? new Provider[0] : providers) {
      if (p instanceof KeylessProvider) {
        continue;
      }
      try {
        Signature s = Signature.getInstance(algorithm.jcaName, p);
        if (pss != null) {
          s.setParameter(pss);
        }
        init.apply(s);
        return s;
      } catch (Exception e) {
        last = e;
      }
    }
    throw new InvalidKeyException("no other provider of " + algorithm.jcaName + " takes this key", last);
  }
}
