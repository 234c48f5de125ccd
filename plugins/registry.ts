/**
 * A registry of named plugins of one kind (optimisers, σ reparameterisations). Users add
 * their own with `register`; the engine looks plugins up by the name an option gives.
 */
export interface NamedPlugin {
  readonly name: string;
}

export class Registry<T extends NamedPlugin> {
  private readonly plugins = new Map<string, T>();

  /** @param kind the plugin kind, as error messages name it (e.g. 'optimiser') */
  constructor(readonly kind: string) {}

  /** Adds a plugin; a name already registered is rejected unless `replace` is true. */
  register(plugin: T, replace = false): void {
    if (typeof plugin.name !== 'string' || !/^[A-Za-z][\w-]*$/.test(plugin.name)) {
      throw new TypeError(`${this.kind} name must be a letter followed by letters, digits, _ or -, got ${JSON.stringify(plugin.name)}`);
    }
    if (this.plugins.has(plugin.name) && !replace) {
      throw new Error(`${this.kind} '${plugin.name}' is already registered; pass replace = true to override it`);
    }
    this.plugins.set(plugin.name, plugin);
  }

  /** Returns the plugin registered under `name`, or throws listing the registered names. */
  get(name: string): T {
    const plugin = this.plugins.get(name);
    if (!plugin) {
      throw new RangeError(`unknown ${this.kind} '${name}'; registered: ${this.names().join(', ')}`);
    }
    return plugin;
  }

  has(name: string): boolean {
    return this.plugins.has(name);
  }

  names(): string[] {
    return [...this.plugins.keys()];
  }
}
