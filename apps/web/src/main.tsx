/** The web client's page: React on the main thread, the Parley device in a worker. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import './styles.css';
import { startParley } from './parley.js';
import { App } from './ui/App.js';

const root = document.getElementById('root');
if (root === null) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <App parley={startParley()} />
  </StrictMode>,
);
