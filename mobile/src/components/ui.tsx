/** The few building blocks every screen uses: a scrolling page, labelled fields with their errors, buttons, banners, chips. */
import { useState, type ReactNode } from 'react';
import { ActivityIndicator, Pressable, ScrollView, StyleSheet, Text, TextInput, View, type TextInputProps } from 'react-native';

export const colors = {
  background: '#f5f6fa',
  card: '#ffffff',
  text: '#1b1f2a',
  muted: '#5f6b7a',
  primary: '#2f5bea',
  danger: '#c62828',
  warning: '#8a5a00',
  success: '#1e7d32',
  border: '#d8dde6',
};

export function Page({ children, testID }: { children: ReactNode; testID?: string }) {
  return (
    <ScrollView style={styles.page} contentContainerStyle={styles.pageContent} testID={testID} keyboardShouldPersistTaps="handled">
      {children}
    </ScrollView>
  );
}

export function Title({ children }: { children: ReactNode }) {
  return (
    <Text style={styles.title} accessibilityRole="header">
      {children}
    </Text>
  );
}

export function Section({ title, children, testID }: { title: string; children: ReactNode; testID?: string }) {
  return (
    <View style={styles.card} testID={testID}>
      <Text style={styles.sectionTitle}>{title}</Text>
      {children}
    </View>
  );
}

export function Muted({ children, testID }: { children: ReactNode; testID?: string }) {
  return (
    <Text style={styles.muted} testID={testID}>
      {children}
    </Text>
  );
}

type FieldProps = TextInputProps & { label: string; error?: string; hint?: string; name: string };

/** A labelled text input; the server's or the form's message about it shows right below. */
export function Field({ label, error, hint, name, style, ...input }: FieldProps) {
  return (
    <View style={styles.field}>
      <Text style={styles.label} nativeID={`${name}-label`}>
        {label}
      </Text>
      <TextInput
        accessibilityLabel={label}
        aria-labelledby={`${name}-label`}
        testID={`field-${name}`}
        style={[styles.input, error ? styles.inputError : null, style]}
        placeholderTextColor={colors.muted}
        {...input}
      />
      {hint && !error ? <Text style={styles.hint}>{hint}</Text> : null}
      <FieldError name={name} error={error} />
    </View>
  );
}

/** A secret field (password, API secret) whose text can be shown while typing it, and hidden again. */
export function SecretField(props: Omit<FieldProps, 'secureTextEntry'>) {
  const [shown, setShown] = useState(false);
  return (
    <View>
      <Field {...props} secureTextEntry={!shown} />
      <Pressable
        accessibilityRole="button"
        accessibilityLabel={`${shown ? 'Hide' : 'Show'} ${props.label.toLowerCase()}`}
        onPress={() => setShown((now) => !now)}
        testID={`toggle-${props.name}`}
        style={styles.reveal}
        hitSlop={8}
      >
        <Text style={styles.revealText}>{shown ? 'Hide' : 'Show'}</Text>
      </Pressable>
    </View>
  );
}

export function FieldError({ name, error }: { name: string; error?: string }) {
  if (!error) return null;
  return (
    <Text style={styles.fieldError} testID={`error-${name}`} accessibilityRole="alert">
      {error}
    </Text>
  );
}

export function Button({
  title,
  onPress,
  busy = false,
  disabled = false,
  kind = 'primary',
  testID,
}: {
  title: string;
  onPress: () => void;
  busy?: boolean;
  disabled?: boolean;
  kind?: 'primary' | 'secondary' | 'danger';
  testID?: string;
}) {
  const inactive = busy || disabled;
  return (
    <Pressable
      accessibilityRole="button"
      accessibilityState={{ disabled: inactive, busy }}
      disabled={inactive}
      onPress={onPress}
      testID={testID}
      style={[styles.button, styles[kind], inactive ? styles.inactive : null]}
    >
      {busy ? <ActivityIndicator color={kind === 'secondary' ? colors.primary : '#fff'} /> : null}
      <Text style={[styles.buttonText, kind === 'secondary' ? styles.secondaryText : null]}>{title}</Text>
    </Pressable>
  );
}

export function Banner({ message, kind = 'error', testID = 'banner' }: { message: string | null; kind?: 'error' | 'info' | 'warning'; testID?: string }) {
  if (!message) return null;
  return (
    <View style={[styles.banner, styles[`banner_${kind}`]]} accessibilityRole="alert" testID={testID}>
      <Text style={styles.bannerText}>{message}</Text>
    </View>
  );
}

export function Chip({ label, selected, onPress, testID }: { label: string; selected: boolean; onPress: () => void; testID?: string }) {
  return (
    <Pressable
      accessibilityRole="checkbox"
      accessibilityState={{ checked: selected }}
      onPress={onPress}
      testID={testID}
      style={[styles.chip, selected ? styles.chipSelected : null]}
    >
      <Text style={[styles.chipText, selected ? styles.chipTextSelected : null]}>{label}</Text>
    </Pressable>
  );
}

export function Row({ children }: { children: ReactNode }) {
  return <View style={styles.row}>{children}</View>;
}

export function Loading() {
  return <ActivityIndicator style={{ margin: 24 }} color={colors.primary} />;
}

const styles = StyleSheet.create({
  page: { flex: 1, backgroundColor: colors.background },
  pageContent: { padding: 16, gap: 12, maxWidth: 720, width: '100%', alignSelf: 'center' },
  title: { fontSize: 24, fontWeight: '700', color: colors.text, marginBottom: 4 },
  card: { backgroundColor: colors.card, borderRadius: 10, padding: 14, gap: 8, borderWidth: 1, borderColor: colors.border },
  sectionTitle: { fontSize: 17, fontWeight: '600', color: colors.text },
  muted: { color: colors.muted, fontSize: 14 },
  field: { gap: 4 },
  label: { fontSize: 14, fontWeight: '600', color: colors.text },
  input: { borderWidth: 1, borderColor: colors.border, borderRadius: 8, paddingHorizontal: 10, paddingVertical: 8, fontSize: 16, backgroundColor: '#fff', color: colors.text },
  inputError: { borderColor: colors.danger },
  hint: { color: colors.muted, fontSize: 12 },
  reveal: { position: 'absolute', right: 10, top: 30 },
  revealText: { color: colors.primary, fontWeight: '600' },
  fieldError: { color: colors.danger, fontSize: 13 },
  button: { flexDirection: 'row', gap: 8, justifyContent: 'center', alignItems: 'center', borderRadius: 8, paddingVertical: 11, paddingHorizontal: 16 },
  primary: { backgroundColor: colors.primary },
  secondary: { backgroundColor: '#fff', borderWidth: 1, borderColor: colors.primary },
  danger: { backgroundColor: colors.danger },
  inactive: { opacity: 0.5 },
  buttonText: { color: '#fff', fontWeight: '600', fontSize: 15 },
  secondaryText: { color: colors.primary },
  banner: { borderRadius: 8, padding: 10 },
  banner_error: { backgroundColor: '#fdecea' },
  banner_info: { backgroundColor: '#e8f0fe' },
  banner_warning: { backgroundColor: '#fff4e0' },
  bannerText: { color: colors.text },
  chip: { borderWidth: 1, borderColor: colors.border, borderRadius: 16, paddingHorizontal: 12, paddingVertical: 6, backgroundColor: '#fff' },
  chipSelected: { backgroundColor: colors.primary, borderColor: colors.primary },
  chipText: { color: colors.text },
  chipTextSelected: { color: '#fff' },
  row: { flexDirection: 'row', flexWrap: 'wrap', gap: 8, alignItems: 'center' },
});
