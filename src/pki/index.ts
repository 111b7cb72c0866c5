export { CertificateAuthority, type CertificateAuthorityOptions, type LeafCertificate } from './certificate-authority.js';
export { PkiError } from './errors.js';
