'use strict';
// Stands in for a database migration: a one-shot job that must succeed
// before the app starts.
console.log('migrating: nothing to do');
