import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// Served by the BFF at /ad-fatigue (services/bff/page_routes.py); assets under /ad-fatigue/assets/.
export default defineConfig({
  base: '/ad-fatigue/',
  plugins: [react()],
  build: { target: 'es2020', sourcemap: false, reportCompressedSize: false },
})
