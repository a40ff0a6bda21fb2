export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
