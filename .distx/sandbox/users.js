// The sandbox's accounts and their tenant memberships. Fixed, public test data: nothing here is a secret.
export const USERS = Object.freeze([
    Object.freeze({
        sub: 'alice-0001',
        username: 'alice',
        password: 'alice-password',
        name: 'Alice Example',
        email: 'alice@example.com',
        tenants: Object.freeze(['acme', 'globex']),
    }),
    Object.freeze({
        sub: 'bob-0002',
        username: 'bob',
        password: 'bob-password',
        name: 'Bob Example',
        email: 'bob@example.com',
        tenants: Object.freeze(['acme']),
    }),
]);
export function userBySub(sub) {
    return USERS.find((u) => u.sub === sub);
}
